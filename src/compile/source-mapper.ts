/**
 * Maps positions in a tenant bundle back to the script author's own files. Runs only on error
 * paths (a script threw, called a forbidden API, or failed at load), never per request.
 * Default: a position esbuild has no mapping for is returned unchanged (as the bundle's name).
 * Returns `{ file, line, column }` with `file` as shown in messages (relative to cwd) and 1-based
 * line and column, and rewrites whole stack traces frame by frame.
 *
 * @example
 *   const mapper = new SourceMapper(bundle.map, bundle.scriptsDir);
 *   mapper.position(12, 5); // { file: 'tenants/acme/auth.ts', line: 3, column: 9 }
 */
import { SourceMap, type SourceMapPayload } from 'node:module';
import path from 'node:path';
import { displayPath } from './display-path.ts';
import { TENANT_FILENAME } from './compile-tenant.ts';

export interface SourcePosition {
  file: string;
  line: number;
  column: number;
}

const escaped = TENANT_FILENAME.replace(/[.]/g, '\\.');
const FRAME = new RegExp(`${escaped}:(\\d+):(\\d+)`, 'g');

export class SourceMapper {
  readonly #map: SourceMap;
  readonly #scriptsDir: string;

  constructor(payload: SourceMapPayload, scriptsDir: string) {
    this.#map = new SourceMap(payload);
    this.#scriptsDir = scriptsDir;
  }

  /** Maps a 1-based bundle line/column to the original script. */
  position(line: number, column: number): SourcePosition {
    const entry = this.#map.findEntry(line - 1, column - 1) as { originalSource?: string; originalLine?: number; originalColumn?: number };
    if (entry.originalSource === undefined || entry.originalLine === undefined) return { file: TENANT_FILENAME, line, column };
    const source = entry.originalSource.replace(/^file:\/\//, '');
    return {
      file: displayPath(path.resolve(this.#scriptsDir, source)),
      line: entry.originalLine + 1,
      column: (entry.originalColumn ?? 0) + 1,
    };
  }

  /** The first frame of `stack` that lies in the tenant bundle, mapped; undefined when there is none. */
  firstFrame(stack: string): SourcePosition | undefined {
    FRAME.lastIndex = 0;
    const m = FRAME.exec(stack);
    return m ? this.position(Number(m[1]), Number(m[2])) : undefined;
  }

  /** `stack` with every bundle position replaced by `file:line:column` of the original script. */
  rewriteStack(stack: string): string {
    return stack.replace(FRAME, (_all, l: string, c: string) => {
      const p = this.position(Number(l), Number(c));
      return `${p.file}:${p.line}:${p.column}`;
    });
  }
}
