/**
 * Compile once per machine: a bundle built in one process is taken from the disk cache by another
 * (as a cluster's workers take what their primary built), and rebuilt when a file changes.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const COMPILE = fileURLToPath(new URL('../../../src/compile/compile-tenant.ts', import.meta.url));

/** Compiles the tenant in a fresh node process; returns that process's compile counters. */
function compileInNewProcess(dir: string): { builds: number; fromDisk: number; ok: boolean } {
  const code = `const m = await import(${JSON.stringify(COMPILE)});
    const r = await m.compileTenant({ tenant: 'acme', scriptsDir: ${JSON.stringify(dir)}, scripts: ['a.ts'] });
    process.stdout.write(JSON.stringify({ ...m.compileCounters, ok: r.ok }));`;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: path.dirname(COMPILE) });
  return JSON.parse(out.toString()) as { builds: number; fromDisk: number; ok: boolean };
}

describe('bundle disk cache', () => {
  it('a second process reuses the bundle the first built; a changed file is rebuilt', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sg-diskcache-'));
    writeFileSync(path.join(dir, 'a.ts'), `import { x } from './lib.ts';\nexport default function () { return x; }\n`);
    writeFileSync(path.join(dir, 'lib.ts'), `export const x: number = 1;\n`);
    expect(compileInNewProcess(dir)).toMatchObject({ ok: true, builds: 1, fromDisk: 0 });
    expect(compileInNewProcess(dir)).toMatchObject({ ok: true, builds: 0, fromDisk: 1 });
    // An imported file changes: the cached bundle no longer fits.
    writeFileSync(path.join(dir, 'lib.ts'), `export const x: number = 2;\n`);
    expect(compileInNewProcess(dir)).toMatchObject({ ok: true, builds: 1, fromDisk: 0 });
  }, 60_000);
});
