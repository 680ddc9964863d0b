/**
 * The process logger: pino, JSON to stdout. Created once at start; the level comes from
 * `LOG_LEVEL`, else the config's `log.level`, else `info`. Writes are buffered (async destination)
 * so logging never blocks a request, up to `LOG_BUFFER_BYTES` waiting to be written: when stdout
 * (or an access-log file) takes lines slower than they come, the excess is dropped and counted
 * (scriptgate_log_lines_dropped_total) instead of growing the heap. `flushLogger()` runs on exit.
 */
import pino, { type Logger } from 'pino';
import { logLinesDropped } from './metrics.ts';

/** Bytes a log destination may hold unwritten before it drops lines. */
export const LOG_BUFFER_BYTES = 16 * 1024 * 1024;

/** An async pino destination (stdout: 1, or a file path) bounded by LOG_BUFFER_BYTES, counting what it drops. */
export function boundedDestination(dest: number | string): ReturnType<typeof pino.destination> {
  const out = pino.destination({ dest, sync: false, minLength: 0, maxLength: LOG_BUFFER_BYTES, mkdir: typeof dest === 'string', append: true });
  (out as unknown as NodeJS.EventEmitter).on('drop', () => logLinesDropped.inc());
  return out;
}

let destination: pino.DestinationStream & { flushSync?: () => void } | undefined;

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Creates the root logger; `base` fields (pid, worker) go on every line. Throws a one-line Error for a bad LOG_LEVEL. */
export function createLogger(level?: string, base: Record<string, unknown> = {}): Logger {
  const chosen = process.env.LOG_LEVEL || level || 'info';
  if (!LEVELS.includes(chosen)) throw new Error(`LOG_LEVEL ${JSON.stringify(chosen)} is not a log level (${LEVELS.join(', ')})`);
  destination ??= boundedDestination(1);
  return pino(
    {
      level: chosen,
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
