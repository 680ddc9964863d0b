/**
 * The config watcher notices what a reload should pick up: a script written in a watched folder,
 * and a Kubernetes ConfigMap volume's update (its `..data` link renamed over to a new folder).
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { watchConfigFolders, watchForChanges } from '../../../src/control/watch.ts';
import { compileTenant } from '../../../src/compile/compile-tenant.ts';
import { parseConfig } from '../../../src/config/load.ts';

function watched(dir: string): Promise<string> {
  return new Promise((resolve) => {
    const stop = watchForChanges(path.join(dir, 'scriptgate.yaml'), [path.join(dir, 'scripts')], 10, (what) => {
      stop();
      resolve(what);
    }, pino({ level: 'silent' }));
    onTestFinished(stop);
  });
}

describe('watchForChanges', () => {
  it('a ConfigMap-style swap of the ..data link in a scripts folder triggers a reload', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sg-watch-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const scripts = path.join(dir, 'scripts');
    mkdirSync(path.join(scripts, '..2026_1'), { recursive: true });
    mkdirSync(path.join(scripts, '..2026_2'), { recursive: true });
    symlinkSync('..2026_1', path.join(scripts, '..data'));
    writeFileSync(path.join(dir, 'scriptgate.yaml'), '');
    const seen = watched(dir);
    symlinkSync('..2026_2', path.join(scripts, '..data_tmp'));
    renameSync(path.join(scripts, '..data_tmp'), path.join(scripts, '..data'));
    expect(await seen).toBe(path.join(scripts, '..data'));
  });

  it('a script written in a watched folder triggers a reload', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sg-watch-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(path.join(dir, 'scripts'));
    writeFileSync(path.join(dir, 'scriptgate.yaml'), '');
    const seen = watched(dir);
    writeFileSync(path.join(dir, 'scripts', 'access.ts'), 'export default function () {}\n');
    expect(await seen).toBe(path.join(dir, 'scripts', 'access.ts'));
  });

  it('an edit to a helper a script imports from a subfolder triggers a reload; after a reload a folder replaced by a deploy is watched again', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sg-watch-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const t = path.join(dir, 't');
    const files = { 's.ts': 'import { h } from "./lib/helper.ts";\nexport default function (ctx: any) { ctx.vars.h = h; }\n', 'lib/helper.ts': 'export const h = 1;\n' };
    const writeTenant = (root: string) => {
      mkdirSync(path.join(root, 'lib'), { recursive: true });
      for (const [name, text] of Object.entries(files)) writeFileSync(path.join(root, name), text);
    };
    writeTenant(t);
    const configFile = path.join(dir, 'scriptgate.yaml');
    const yaml = 'listen: [{ address: 127.0.0.1:0 }]\nreload: { debounce: 10ms }\ntenants:\n  a: { scripts: t }\nupstreams:\n  up: { targets: ["127.0.0.1:9"] }\nroutes:\n  - upstream: up\n    tenant: a\n    access_by_script: s.ts\n';
    writeFileSync(configFile, yaml);
    const { config } = parseConfig(yaml, configFile);
    expect((await compileTenant({ tenant: 'a', scriptsDir: t, scripts: ['s.ts'] })).ok).toBe(true);
    const seen: string[] = [];
    let wake: () => void = () => undefined;
    const next = () => new Promise<void>((r) => (wake = r));
    const watcher = watchConfigFolders(configFile, config, (what) => (seen.push(what), wake()), pino({ level: 'silent' }));
    onTestFinished(() => watcher.stop());
    let change = next();
    writeFileSync(path.join(t, 'lib', 'helper.ts'), 'export const h = 2;\n');
    await change;
    expect(seen.at(-1)).toBe(path.join(t, 'lib', 'helper.ts'));
    // A deploy that swaps the whole folder; the reload it causes re-arms the watch (aim).
    writeTenant(`${t}.new`);
    rmSync(t, { recursive: true });
    renameSync(`${t}.new`, t);
    watcher.aim(config);
    change = next();
    writeFileSync(path.join(t, 's.ts'), files['s.ts'] + '// edited\n');
    await change;
    expect(seen.at(-1)).toBe(path.join(t, 's.ts'));
  });
});
