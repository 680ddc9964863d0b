// Process control for the bench: every child the harness starts goes through `start()`, is
// remembered by PID, and is stopped by PID (never by name) in `stop()` / `stopAll()`, also on
// SIGINT/SIGTERM, uncaught errors, and (as a last resort, synchronously) on process exit.
// Descendants (nginx workers, cluster workers) are collected from /proc before the parent is
// signalled, so leftovers can be killed by their own PID.
import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { descendants } from './proc-stat.js';

/** @type {Map<number, {name: string, child: import('node:child_process').ChildProcess, exited: boolean}>} */
const running = new Map();

/**
 * Spawn `cmd args` with stdout+stderr appended to `logFile`, collected in `entry.out`/`entry.err`
 * (`capture`), or ignored. Resolves nothing:
 * readiness is the caller's business (poll the port). Returns a handle with pid, exit promise and
 * a way to read the log's tail.
 */
export function start(name, cmd, args, { cwd, env, logFile, capture = false } = {}) {
  let fd = 'ignore';
  if (capture) fd = 'pipe';
  else if (logFile) fd = openSync(logFile, 'w');
  const child = spawn(cmd, args, { cwd, env: env ?? process.env, stdio: ['ignore', fd, fd], detached: false });
  if (typeof fd === 'number') closeSync(fd);
  const entry = { name, child, exited: false, code: null, signal: null, out: '', err: '' };
  if (capture) {
    child.stdout.setEncoding('utf8').on('data', (d) => (entry.out += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (entry.err += d));
  }
  const exited = new Promise((resolve) => {
    // With captured output wait for 'close' (stdio drained), else 'exit'.
    child.once(capture ? 'close' : 'exit', (code, signal) => {
      entry.exited = true;
      entry.code = code;
      entry.signal = signal;
      running.delete(child.pid);
      resolve({ code, signal });
    });
    child.once('error', (err) => {
      entry.exited = true;
      entry.error = err;
      if (child.pid) running.delete(child.pid);
      resolve({ code: null, signal: null, error: err });
    });
  });
  const handle = { name, pid: child.pid, child, exited, entry };
  entry.handle = handle;
  if (child.pid) running.set(child.pid, entry);
  return handle;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Stop one started process: `signal` to the PID, wait up to `graceMs` for it to exit, then
 * SIGKILL it; then SIGKILL any descendant that is still there (by PID).
 */
export async function stop(handle, { signal = 'SIGTERM', graceMs = 5000 } = {}) {
  if (!handle?.pid) return;
  const kids = descendants(handle.pid);
  if (!handle.entry.exited) {
    try {
      process.kill(handle.pid, signal);
    } catch {}
    const t = sleep(graceMs).then(() => 'timeout');
    const r = await Promise.race([handle.exited, t]);
    if (r === 'timeout' && !handle.entry.exited) {
      try {
        process.kill(handle.pid, 'SIGKILL');
      } catch {}
      await Promise.race([handle.exited, sleep(2000)]);
    }
  }
  // Children (cluster/nginx workers) normally leave with their parent; give them a moment.
  for (let i = 0; i < 20 && kids.some(alive); i++) await sleep(100);
  for (const pid of kids) {
    if (alive(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
  }
}

/** Stop everything still running (reverse start order). */
export async function stopAll() {
  const entries = [...running.values()].reverse();
  for (const e of entries) await stop(e.handle, { graceMs: 3000 });
}

/** Synchronous last resort for process 'exit': SIGKILL every PID still registered and its descendants. */
function killAllSync() {
  for (const pid of [...running.keys()]) {
    for (const d of descendants(pid)) {
      try {
        process.kill(d, 'SIGKILL');
      } catch {}
    }
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
}

let installed = false;
let stopping = false;
/** True once SIGINT/SIGTERM/an uncaught error started the shutdown: callers should stop work. */
export const isStopping = () => stopping;

/** Install SIGINT/SIGTERM/uncaught handlers that stop every child by PID before exiting. */
export function installCleanupHandlers(log = console.error) {
  if (installed) return;
  installed = true;
  const bail = async (why, code) => {
    if (stopping) {
      killAllSync();
      process.exit(code);
    }
    stopping = true;
    log(`\n[bench] ${why}: stopping ${running.size} process(es) by PID…`);
    const hard = setTimeout(() => {
      killAllSync();
      process.exit(code);
    }, 10_000);
    hard.unref();
    await stopAll().catch(() => {});
    killAllSync();
    process.exit(code);
  };
  process.on('SIGINT', () => bail('SIGINT', 130));
  process.on('SIGTERM', () => bail('SIGTERM', 143));
  process.on('uncaughtException', (e) => {
    log(e?.stack ?? String(e));
    bail('uncaught exception', 1);
  });
  process.on('unhandledRejection', (e) => {
    log(e?.stack ?? String(e));
    bail('unhandled rejection', 1);
  });
  process.on('exit', killAllSync);
}
