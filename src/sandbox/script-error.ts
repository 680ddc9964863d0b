/**
 * Turns a failure of a phase call into the ProxyError the core sees. Runs only on error paths.
 * Default: the message is `file:line:column: <phase> script <reason>` with the position of the
 * first stack frame inside the tenant's own scripts (source-mapped); when there is none (timeout,
 * memory, a bad result), the phase's script file alone. The mapped stack goes into `cause`.
 */
import { ProxyError, type ErrorCode } from '../errors.ts';
import type { SourceMapper } from '../compile/source-mapper.ts';
import { displayPath } from '../compile/display-path.ts';
import { PHASE_NAMES, type WireError } from './wire.ts';
import path from 'node:path';

const KIND_CODE: Record<WireError['k'], ErrorCode> = {
  S: 'PRX_ERR_SCRIPT',
  F: 'PRX_ERR_PHASE_FORBIDDEN',
  R: 'PRX_ERR_SCRIPT_RESULT',
  I: 'PRX_ERR_INTERNAL',
};

/** Where a tenant's scripts live, to name a phase's file. */
export interface ScriptFiles {
  scriptsDir: string;
  mapper: SourceMapper;
}

/** Display name of the script key `key` (path relative to the tenant's folder). */
export function scriptFile(files: ScriptFiles, key: string | null | undefined): string {
  return key ? displayPath(path.resolve(files.scriptsDir, key)) : '<no script>';
}

/** A script's own failure reported by the bootstrap. */
export function fromWireError(files: ScriptFiles, keys: ReadonlyArray<string | null>, e: WireError): ProxyError {
  const phase = PHASE_NAMES[e.p] ?? 'unknown';
  const pos = e.st ? files.mapper.firstFrame(e.st) : undefined;
  const where = pos ? `${pos.file}:${pos.line}:${pos.column}` : scriptFile(files, keys[e.p]);
  const what = e.k === 'S' ? `threw ${e.m}` : e.k === 'F' ? `made a forbidden call: ${e.m}` : e.k === 'R' ? `returned a bad result: ${e.m}` : e.m;
  const cause = new Error(e.m);
  cause.name = 'ScriptError';
  cause.stack = e.st ? files.mapper.rewriteStack(e.st) : `${e.m}\n    at ${where}`;
  return new ProxyError(KIND_CODE[e.k], `${where}: ${phase} script ${what}`, { cause });
}

/**
 * A call cut off by the host: timeout or memory exhaustion. `phases` are those that may have been
 * running; `stack` (a timeout's) locates it in the script when it holds a frame of the tenant's code.
 */
export function fromLimit(
  files: ScriptFiles,
  keys: ReadonlyArray<string | null>,
  phases: readonly number[],
  code: 'PRX_ERR_SCRIPT_TIMEOUT' | 'PRX_ERR_SCRIPT_MEMORY',
  reason: string,
  stack = '',
): ProxyError {
  // A call stopped by its timeout carries the stack it was stopped in: name the script's own line.
  const pos = stack ? files.mapper.firstFrame(stack) : undefined;
  const where = pos ? `${pos.file}:${pos.line}:${pos.column}` : phases.map((p) => scriptFile(files, keys[p])).join(', ');
  const names = phases.map((p) => PHASE_NAMES[p]).join('/');
  return new ProxyError(code, `${where}: ${names} script ${reason}`);
}
