#!/usr/bin/env node
// Launcher for the `scriptgate` command. isolated-vm needs `--no-node-snapshot` on Node >= 20 and
// that flag cannot go in NODE_OPTIONS, so when it is missing we re-run node with it (forwarding
// signals and the exit code). The TypeScript sources are loaded through tsx's in-process loader.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

if (!process.execArgv.includes('--no-node-snapshot')) {
  const child = spawn(process.execPath, ['--no-node-snapshot', ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR2']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 + 15 : 1)));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  const { main } = await import('../src/cli/main.ts');
  await main(process.argv.slice(2));
}
