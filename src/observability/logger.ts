/**
 * The process logger: pino, JSON to stdout. Created once at start; the level comes from
 * `LOG_LEVEL`, else the config's `log.level`, else `info`. Writes are buffered (async destination)
 * so logging never blocks a request; `flushLogger()` runs on exit.
 */
import pino, { type Logger } from 'pino';

let destination: pino.DestinationStream & { flushSync?: () => void } | undefined;

/** Creates the root logger; `base` fields (pid, worker) go on every line. */
export function createLogger(level?: string, base: Record<string, unknown> = {}): Logger {
  destination ??= pino.destination({ dest: 1, sync: false, minLength: 0 });
  return pino(
    {
      level: process.env.LOG_LEVEL ?? level ?? 'info',
      base: { pid: process.pid, ...base },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

const flushers: Array<() => void> = [];

/** Adds a destination to flush on exit (access log files). */
export function onFlush(fn: () => void): void {
  flushers.push(fn);
}

/** Writes out buffered log lines (stdout and every registered destination); call before the process exits. */
export function flushLogger(): void {
  for (const fn of [() => destination?.flushSync?.(), ...flushers]) {
    try {
      fn();
    } catch {
      // already closed (or not yet open): nothing left to do
    }
  }
}
