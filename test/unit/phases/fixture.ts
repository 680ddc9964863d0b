/**
 * Test fixture: writes a config and its scripts into a fresh temp folder, loads it with the real
 * loader and builds a real ScriptHost (real esbuild, real isolates). `cleanup()` disposes the host
 * and removes the folder.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { loadConfig } from '../../../src/config/load.ts';
import { createScriptHost, type ScriptHostImpl } from '../../../src/phases/script-host.ts';
import type { ScriptRequest } from '../../../src/phases/contract.ts';

export interface Fixture {
  dir: string;
  configFile: string;
  host: ScriptHostImpl;
  logs: Array<Record<string, unknown>>;
  logger: pino.Logger;
  cleanup(): void;
}

export function writeTree(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'sg-test-'));
  for (const [name, text] of Object.entries(files)) {
    const file = path.join(dir, name);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
  }
  return dir;
}

export function captureLogger(): { logger: pino.Logger; logs: Array<Record<string, unknown>> } {
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, logs };
}

/** `files` must contain `scriptgate.yaml`; the other entries are scripts. */
export async function fixture(files: Record<string, string>): Promise<Fixture> {
  const dir = writeTree(files);
  const configFile = path.join(dir, 'scriptgate.yaml');
  const { logger, logs } = captureLogger();
  try {
    const loaded = await loadConfig(configFile);
    const host = (await createScriptHost(loaded, logger)) as ScriptHostImpl;
    return { dir, configFile, host, logs, logger, cleanup: () => (host.dispose(), rmSync(dir, { recursive: true, force: true })) };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * A config with one listener, two upstreams and the given routes/tenants YAML. The default tenant
 * gets a generous cpu_ms: the limit is wall-clock, and a loaded test machine must not fail scripts
 * that do not loop.
 */
export function config(routes: string, tenants = 'tenants:\n  default: { cpu_ms: 1000, scripts: . }\n'): string {
  return `listen:\n  - address: 127.0.0.1:0\nupstreams:\n  one: { targets: ["127.0.0.1:9001"] }\n  two: { targets: ["127.0.0.1:9002"] }\n${tenants}routes:\n${routes}`;
}

let n = 0;
export function request(over: Partial<ScriptRequest> = {}): ScriptRequest {
  n++;
  return {
    id: `req-${n}`,
    method: 'GET',
    path: '/api/v1/users',
    query: 'a=1',
    headers: ['host', 'example.com', 'authorization', 'Bearer abc', 'accept', '*/*'],
    httpVersion: '1.1',
    scheme: 'http',
    clientIp: '127.0.0.1',
    clientPort: 5555,
    route: 'api',
    tenant: 'default',
    ...over,
  };
}

export const SUMMARY = {
  status: 200,
  bytesSent: 10,
  bytesReceived: 0,
  timings: { total: 5, upstreamConnect: 1, upstreamHeader: 2, upstreamBody: 3 },
  upstreamAddress: '127.0.0.1:9001',
  responseHeaders: ['content-type', 'text/plain'],
  error: '',
};

/** Runs route `route`'s request phases for `req` and returns its exit body as JSON (throws when the scripts did not exit). */
export function exitJson(f: Fixture, route: number, req: ScriptRequest): unknown {
  const s = f.host.route(route)!.open(req, f.logger);
  try {
    const r = s.requestPhases(req);
    if (r.action !== 'exit') throw new Error('no exit');
    return JSON.parse(String(r.body));
  } finally {
    s.close();
  }
}
