/**
 * compileTenant's reload cache: an unchanged tenant gets its previous bundle back without esbuild;
 * a change to any file the bundle read (an imported helper too) rebuilds that tenant only.
 */
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileCounters, compileTenant } from '../../../src/compile/compile-tenant.ts';
import { writeTree } from '../phases/fixture.ts';

const dir = writeTree({
  'a/main.ts': 'import { h } from "./lib.ts";\nexport default function (ctx: any) { ctx.vars.v = h(); }\n',
  'a/lib.ts': 'export const h = () => "one";\n',
  'b/main.ts': 'export default function (ctx: any) { ctx.vars.v = "b"; }\n',
  // A big module makes the build slow enough to rewrite a small file while it runs.
  'race/main.ts': 'import big from "./big.ts";\nimport { word } from "./word.ts";\nexport default function (ctx: any) { ctx.vars.v = word + Object.keys(big).length; }\n',
  'race/word.ts': 'export const word = "OLDWORD";\n',
  'race/big.ts': `export default { ${Array.from({ length: 150_000 }, (_, i) => `k${i}: ${i}`).join(', ')} };\n`,
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function bundle(tenant: string) {
  const r = await compileTenant({ tenant, scriptsDir: path.join(dir, tenant), scripts: ['main.ts'] });
  if (!r.ok) throw new Error(r.problems.join('\n'));
  return r.bundle;
}

describe('compile cache', () => {
  it('reuses unchanged tenants and rebuilds only the one whose (imported) file changed', async () => {
    const a1 = await bundle('a');
    const b1 = await bundle('b');
    const builds = compileCounters.builds;
    expect(await bundle('a')).toBe(a1);
    expect(await bundle('b')).toBe(b1);
    expect(compileCounters.builds).toBe(builds);
    writeFileSync(path.join(dir, 'a/lib.ts'), 'export const h = () => "two";\n');
    const a2 = await bundle('a');
    expect(a2).not.toBe(a1);
    expect(a2.code).toContain('two');
    expect(await bundle('b')).toBe(b1);
    expect(compileCounters.builds).toBe(builds + 1);
  });

  it('a tenant name or script list that differs is a different entry', async () => {
    const a = await bundle('a');
    const r = await compileTenant({ tenant: 'other', scriptsDir: path.join(dir, 'a'), scripts: ['main.ts'] });
    expect(r.ok && r.bundle).not.toBe(a);
  });

  it('a file rewritten while its tenant builds is rebuilt on the next compile: the cache never pairs the new file with the old code', async () => {
    const word = path.join(dir, 'race/word.ts');
    // Several tries: the rewrite must land after esbuild read word.ts and before the build ends.
    for (let i = 0; i < 3; i++) {
      writeFileSync(word, `export const word = "OLDWORD${i}";\n`);
      const building = bundle('race');
      await new Promise((r) => setTimeout(r, 50));
      writeFileSync(word, `export const word = "NEWWORD${i}";\n`);
      await building;
      const next = await bundle('race');
      expect(next.code).toContain(`NEWWORD${i}`);
    }
  });
});
