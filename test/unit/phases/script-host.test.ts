import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/config/load.ts';
import { config, fixture } from './fixture.ts';

async function problems(files: Record<string, string>): Promise<string[]> {
  try {
    const f = await fixture(files);
    f.cleanup();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('createScriptHost', () => {
  it('reports every compile problem of every tenant at once as file:line: message', async () => {
    const p = await problems({
      'scriptgate.yaml': config(
        `  - access_by_script: syntax.ts
  - access_by_script: fs.ts
  - tenant: acme
    rewrite_by_script: up.ts
    log_by_script: missing.ts
  - access_by_script: ../elsewhere.ts
`,
        'tenants:\n  acme: { scripts: acme }\n',
      ),
      'syntax.ts': 'export default function (ctx) {\n  return ctx.;\n}\n',
      'fs.ts': 'import { readFileSync } from "fs";\nexport default function () { readFileSync("/etc/passwd"); }\n',
      'acme/up.ts': 'import x from "../syntax.ts";\nexport default function () { return x; }\n',
      'elsewhere.ts': 'export default function () {}\n',
    });
    const text = p.join('\n');
    expect(text).toMatch(/scriptgate\.yaml:13: routes\[2\]\.log_by_script: script not found: .*acme\/missing\.ts/);
    expect(text).toMatch(/scriptgate\.yaml:14: routes\[3\]\.access_by_script: script "\.\.\/elsewhere\.ts" is outside tenant "default"'s scripts folder/);
    expect(text).toMatch(/syntax\.ts:2: /);
    expect(text).toMatch(/fs\.ts:1: cannot import Node built-in "fs"/);
    expect(text).toMatch(/acme\/up\.ts:1: cannot import "\.\.\/syntax\.ts": it is outside/);
    expect(p).toHaveLength(5);
  });

  it('reports a script without a default export and a script that throws while loading', async () => {
    const p = await problems({
      'scriptgate.yaml': config('  - access_by_script: nodefault.ts\n  - tenant: other\n    rewrite_by_script: throws.ts\n  - header_filter_by_script: async.ts\n', 'tenants:\n  other: { scripts: other }\n'),
      'nodefault.ts': 'export function access() {}\n',
      'async.ts': 'export default async function () {}\n',
      'other/throws.ts': 'const x: any = undefined;\nx.boom();\nexport default function () {}\n',
    });
    expect(p.join('\n')).toMatch(/nodefault\.ts:1: a phase script must `export default` a function/);
    expect(p.join('\n')).toMatch(/throws\.ts:2: the script failed while loading: .*boom/);
    expect(p.join('\n')).toMatch(/async\.ts:1: a phase script must be synchronous: its default export is an AsyncFunction/);
  });
});
