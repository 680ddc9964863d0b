import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileTenant } from '../../../src/compile/compile-tenant.ts';
import { SourceMapper } from '../../../src/compile/source-mapper.ts';
import { writeTree } from '../phases/fixture.ts';

const dir = writeTree({
  'outside.ts': 'export const x = 1;\n',
  't/ok.ts': `import type { AccessContext } from "scriptgate/runtime-api";
import { type RewriteContext } from "scriptgate/runtime-api";
import { helper } from "./lib/helper.ts";
enum Mode { A = "a" }
export default function access(ctx: AccessContext): void {
  const value: string = helper(Mode.A);
  ctx.vars.v = value ?? "none";
}
export type Unused = RewriteContext;
`,
  't/lib/helper.ts': `export function helper(s: string): string {
  return s.toUpperCase();
}
`,
  't/builtin.ts': `import fs from "node:fs";
export default function () { return fs; }
`,
  't/bare-builtin.ts': `import { join } from "path";
export default function () { return join("a"); }
`,
  't/package.ts': `import x from "left-pad";
export default function () { return x; }
`,
  't/outside.ts': `import { x } from "../outside.ts";
export default function () { return x; }
`,
  't/require.ts': `export default function () { return require("fs"); }
`,
  't/syntax.ts': `export default function (ctx) {
  let x = ;
}
`,
});
const scriptsDir = path.join(dir, 't');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('compileTenant', () => {
  it('bundles TypeScript with relative imports and type-only runtime-api imports into one IIFE', async () => {
    const r = await compileTenant({ tenant: 'acme', scriptsDir, scripts: ['ok.ts', './ok.ts'] });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.bundle.keys).toEqual(['ok.ts']);
    expect(r.bundle.code).toMatch(/^var __sgTenant = /);
    expect(r.bundle.code).not.toMatch(/runtime-api|sourceMappingURL/);
    const table = new Function(`${r.bundle.code}; return __sgTenant.scripts;`)() as Record<string, (ctx: { vars: Record<string, unknown> }) => void>;
    const ctx = { vars: {} as Record<string, unknown> };
    table['ok.ts']!(ctx);
    expect(ctx.vars.v).toBe('A');
  });

  it("accepts a Kubernetes ConfigMap layout: scripts symlinked through `..data` into a `..<timestamp>` folder are inside", async () => {
    const cm = path.join(dir, 'cm');
    mkdirSync(path.join(cm, '..2026_11_27_00_00_00.1', 'lib'), { recursive: true });
    writeFileSync(path.join(cm, '..2026_11_27_00_00_00.1', 'access.ts'), 'import { up } from "./lib/up.ts";\nexport default function (ctx: any) { ctx.vars.v = up("a"); }\n');
    writeFileSync(path.join(cm, '..2026_11_27_00_00_00.1', 'lib', 'up.ts'), 'export const up = (s: string) => s.toUpperCase();\n');
    symlinkSync('..2026_11_27_00_00_00.1', path.join(cm, '..data'));
    symlinkSync('..data/access.ts', path.join(cm, 'access.ts'));
    symlinkSync('..data/lib', path.join(cm, 'lib'));
    const r = await compileTenant({ tenant: 'cm', scriptsDir: cm, scripts: ['access.ts'] });
    expect(r.ok ? 'ok' : r.problems).toBe('ok');
    // The kubelet's update: a new timestamped folder, `..data` swapped to it, the old one still there.
    mkdirSync(path.join(cm, '..2026_11_27_01_00_00.2', 'lib'), { recursive: true });
    writeFileSync(path.join(cm, '..2026_11_27_01_00_00.2', 'access.ts'), 'import { up } from "./lib/up.ts";\nexport default function (ctx: any) { ctx.vars.v = up("b") + "-v2"; }\n');
    writeFileSync(path.join(cm, '..2026_11_27_01_00_00.2', 'lib', 'up.ts'), 'export const up = (s: string) => s.toUpperCase();\n');
    symlinkSync('..2026_11_27_01_00_00.2', path.join(cm, '..data_tmp'));
    renameSync(path.join(cm, '..data_tmp'), path.join(cm, '..data'));
    const again = await compileTenant({ tenant: 'cm', scriptsDir: cm, scripts: ['access.ts'] });
    expect(again.ok && again.bundle.code).toMatch(/-v2/);
  });

  it('keeps a source map back to the original files', async () => {
    const r = await compileTenant({ tenant: 'acme', scriptsDir, scripts: ['ok.ts'] });
    if (!r.ok) throw new Error(r.problems.join('\n'));
    const lines = r.bundle.code.split('\n');
    const line = lines.findIndex((l) => l.includes('toUpperCase'));
    const mapper = new SourceMapper(r.bundle.map, scriptsDir);
    const pos = mapper.position(line + 1, lines[line]!.indexOf('s.toUpperCase') + 1);
    expect(pos.file).toMatch(/t\/lib\/helper\.ts$/);
    expect(pos.line).toBe(2);
    expect(pos.column).toBe(10);
  });

  it('rejects Node built-ins, packages, files outside the folder and require() with file:line', async () => {
    const r = await compileTenant({ tenant: 'acme', scriptsDir, scripts: ['builtin.ts', 'bare-builtin.ts', 'package.ts', 'outside.ts', 'require.ts'] });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const text = r.problems.join('\n');
    expect(text).toMatch(/t\/builtin\.ts:1: cannot import Node built-in "node:fs"/);
    expect(text).toMatch(/t\/bare-builtin\.ts:1: cannot import Node built-in "path"/);
    expect(text).toMatch(/t\/package\.ts:1: cannot import package "left-pad"/);
    expect(text).toMatch(/t\/outside\.ts:1: cannot import "\.\.\/outside\.ts": it is outside the tenant's scripts folder/);
    expect(text).toMatch(/t\/require\.ts:1: cannot import Node built-in "fs"/);
    expect(r.problems).toHaveLength(5);
  });

  it('reports a syntax error at its line', async () => {
    const r = await compileTenant({ tenant: 'acme', scriptsDir, scripts: ['syntax.ts'] });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems).toEqual([expect.stringMatching(/t\/syntax\.ts:2: Unexpected ";"/)]);
  });
});
