#!/usr/bin/env -S node --no-node-snapshot
// Launcher for the `scriptgate` command. isolated-vm needs `--no-node-snapshot` on Node >= 20 and
// that flag cannot go in NODE_OPTIONS: the shebang passes it (one process, whose PID is the
// proxy's), and when it is missing anyway (`node bin/scriptgate.js …`) we re-run node with it,
// forwarding every signal the proxy acts on and the exit code. Then it runs dist/scriptgate.js (built by `npm install` through
// scripts/build.js) when that is newer than every file under src/, else the TypeScript sources
// through tsx's in-process loader (SCRIPTGATE_FROM_SOURCE=1 forces that).
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Newest modification time of the files under `dir`. */
function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** dist/scriptgate.js when it exists and is newer than src/, else undefined. */
function freshBundle() {
  if (process.env.SCRIPTGATE_FROM_SOURCE) return undefined;
  const bundle = path.join(root, 'dist', 'scriptgate.js');
  try {
    return statSync(bundle).mtimeMs >= newest(path.join(root, 'src')) ? bundle : undefined;
  } catch {
    return undefined;
  }
}

if (!process.execArgv.includes('--no-node-snapshot')) {
  const child = spawn(process.execPath, ['--no-node-snapshot', ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  // SIGUSR1 too: left to node's default it would open the inspector in this launcher.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGQUIT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 + 15 : 1)));
} else {
  // Until the proxy installs its own handlers (control/early-signals.ts), the signals it acts on
  // are noted, not acted on: with no listener, SIGUSR1 would open node's inspector on 127.0.0.1:9229
  // and SIGHUP, SIGUSR2 or SIGQUIT would kill a process that is still starting.
  const early = { seen: [], listener: (sig) => early.seen.push(sig) };
  for (const sig of ['SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGQUIT']) process.on(sig, early.listener);
  globalThis.__scriptgateEarlySignals = early;
  const bundle = freshBundle();
  let main;
  if (bundle) ({ main } = await import(pathToFileURL(bundle).href));
  else {
    const { register } = await import('tsx/esm/api');
    register();
    ({ main } = await import('../src/cli/main.ts'));
  }
  await main(process.argv.slice(2));
}
