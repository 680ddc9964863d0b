/**
 * The config watcher notices what a reload should pick up: a script written in a watched folder,
 * and a Kubernetes ConfigMap volume's update (its `..data` link renamed over to a new folder).
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { watchForChanges } from '../../../src/control/watch.ts';

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
});
