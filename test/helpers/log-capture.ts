/**
 * A pino logger whose JSON lines are kept in memory, with a way to await a line: tests read what
 * the proxy logs (access lines, script errors, ctx.log output) without polling.
 */
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';

export interface LogCapture {
  logger: Logger;
  lines: Array<Record<string, unknown>>;
  /** Resolves with the first line matching `pred`, waiting for new lines as they are written. */
  waitFor(pred: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
}

export function captureLogs(level = 'info'): LogCapture {
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      for (const w of waiters.splice(0)) w();
      cb();
    },
  });
  return {
    logger: pino({ level }, sink),
    lines,
    async waitFor(pred) {
      for (;;) {
        const found = lines.find(pred);
        if (found) return found;
        await new Promise<void>((r) => waiters.push(r));
      }
    },
  };
}
