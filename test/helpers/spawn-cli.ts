/**
 * Spawns `scriptgate start` (node --no-node-snapshot bin/scriptgate.js) for tests that need the
 * real process model (cluster workers, IPC). Collects stdout's JSON log lines; `waitFor` resolves
 * on an event (each stdout chunk, or exit), never on a sleep. The child and every worker pid seen
 * in its logs are SIGKILLed after the test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(ROOT, 'bin/scriptgate.js');

export interface SpawnedCli {
  child: ChildProcess;
  /** Parsed JSON lines of stdout so far. */
  lines: () => Array<Record<string, unknown>>;
  stdout: () => string;
  stderr: () => string;
  /** Resolves once `pred` holds for stdout's JSON lines (checked on every chunk); rejects on exit or after `ms`. */
  waitFor: (pred: (lines: Array<Record<string, unknown>>) => boolean, ms?: number) => Promise<void>;
  /** How and when the process ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A port free right now on 127.0.0.1 (cluster workers need a fixed one). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** `scriptgate start -c configFile`. */
export function spawnCli(configFile: string, env: Record<string, string> = {}): SpawnedCli {
  return runCli(['start', '-c', configFile], env);
}

/** `scriptgate <args>` as a user runs it (LOG_LEVEL=info unless `env` says otherwise). */
export function runCli(args: string[], env: Record<string, string> = {}): SpawnedCli {
  const child = spawn(process.execPath, ['--no-node-snapshot', BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const parsed: Array<Record<string, unknown>> = [];
  let partial = '';
  const listeners = new Set<() => void>();
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
    partial += c.toString();
    const parts = partial.split('\n');
    partial = parts.pop()!;
    for (const l of parts) {
      if (!l.startsWith('{')) continue;
      try {
        parsed.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        /* not a log line */
      }
    }
    for (const l of listeners) l();
  });
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.on('exit', (code, signal) => {
      for (const l of listeners) l();
      resolve({ code, signal, at: Date.now() });
    }),
  );
  onTestFinished(async () => {
    const pids = new Set<number>(parsed.map((l) => l.pid).filter((p): p is number => typeof p === 'number'));
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid!, 'SIGKILL');
      await exited;
    }
    for (const pid of pids) if (pid !== child.pid && alive(pid)) process.kill(pid, 'SIGKILL');
  });
  return {
    child,
    lines: () => parsed,
    exited,
    stdout: () => out,
    stderr: () => err,
    waitFor: (pred, ms = 30_000) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (pred(parsed)) {
            clearTimeout(timer);
            listeners.delete(check);
            resolve();
          } else if (child.exitCode !== null || child.signalCode !== null) {
            clearTimeout(timer);
            listeners.delete(check);
            reject(new Error(`scriptgate exited (${child.exitCode ?? child.signalCode}) before the expected output\nstdout: ${out}\nstderr: ${err}`));
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`timed out waiting for output\nstdout: ${out.slice(-4000)}\nstderr: ${err}`));
        }, ms);
        listeners.add(check);
        check();
      }),
  };
}
