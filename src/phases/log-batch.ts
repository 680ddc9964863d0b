/**
 * Defers log-phase runs and frees of request state, per tenant, and sends them in one crossing.
 * Runs when a session's `log()` or `close()` enqueues a record. Flushes at the end of the
 * event-loop turn (setImmediate) when the previous flush is at least FLUSH_DELAY_MS (2 ms) old, else
 * once it is (an unref'd timer; never delaying a response): an idle proxy runs log phases at once,
 * a busy one at most every 2 ms, so a batch carries a dozen or more requests and the crossing, its
 * timer and the shared dicts' LMDB commit are paid once for all of them. Also flushes when 256
 * records wait, before a crossing of a route whose scripts may read shared dicts (so that request
 * sees the log phases' writes, as it would under nginx: RouteScriptsImpl.flushLogsFirst), and when
 * `flush()` is called (generation dispose, drain, tests). A failing flush is logged and every
 * request state in it is freed anyway.
 */
import type { Logger } from 'pino';
import type { TenantSandbox } from '../sandbox/tenant-sandbox.ts';
import type { WireError, WireFlushOutcome, WireLog } from '../sandbox/wire.ts';
import { PHASE_ID } from '../sandbox/wire.ts';

/** Where one request's log outcome goes. */
export interface LogOutcomeSink {
  keys: ReadonlyArray<string | null>;
  logs(entries: WireLog[]): void;
  failed(error: WireError): void;
}

const MAX_BATCH = 256;
/** How long the first record of a batch waits for others (ms). */
export const FLUSH_DELAY_MS = 2;

export class LogBatch {
  readonly #sandbox: TenantSandbox;
  readonly #logger: Logger;
  #records: string[] = [];
  #sids: number[] = [];
  #sinks = new Map<number, LogOutcomeSink>();
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  /** performance.now() of the last flush. */
  #flushedAt = -Infinity;
  readonly #onTimer = (): void => {
    this.#timer = undefined;
    this.#immediate = undefined;
    this.flush();
  };

  constructor(sandbox: TenantSandbox, logger: Logger) {
    this.#sandbox = sandbox;
    this.#logger = logger;
  }

  /** Queues a record (JSON of a WireLogRecord); `sink` receives the log phase's outcome. */
  enqueue(sid: number, record: string, sink?: LogOutcomeSink): void {
    this.#records.push(record);
    this.#sids.push(sid);
    if (sink) this.#sinks.set(sid, sink);
    if (this.#records.length >= MAX_BATCH) this.flush();
    else if (!this.#timer && !this.#immediate) {
      const wait = this.#flushedAt + FLUSH_DELAY_MS - performance.now();
      if (wait <= 0) this.#immediate = setImmediate(this.#onTimer).unref();
      else this.#timer = setTimeout(this.#onTimer, wait).unref();
    }
  }

  get pending(): number {
    return this.#records.length;
  }

  /** Sends every queued record now (one crossing). Never throws. */
  flush(): void {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#immediate) {
      clearImmediate(this.#immediate);
      this.#immediate = undefined;
    }
    this.#flushedAt = performance.now();
    if (this.#records.length === 0) return;
    const batch = `[${this.#records.join(',')}]`;
    const sinks = this.#sinks;
    const sids = this.#sids;
    this.#records = [];
    this.#sids = [];
    this.#sinks = new Map();
    const first = sinks.values().next().value;
    let out: unknown;
    try {
      out = this.#sandbox.call('flush', [batch], first?.keys ?? [], [PHASE_ID.log], sids.length);
    } catch (err) {
      this.#logger.error({ err, tenant: this.#sandbox.tenant, requests: sids.length }, 'log phase batch failed; request state freed');
      if (this.#sandbox.alive) {
        try {
          this.#sandbox.call('free', [sids.join(',')], [], []);
        } catch {
          /* the isolate is gone: nothing left to free */
        }
      }
      return;
    }
    if (typeof out !== 'string' || out === '') return;
    try {
      const parsed = JSON.parse(out) as WireFlushOutcome[] | { e?: WireError };
      if (!Array.isArray(parsed)) {
        // The whole batch's result was refused inside the isolate (e.g. too many log lines).
        this.#logger.error({ tenant: this.#sandbox.tenant, requests: sids.length, reason: parsed.e?.m }, 'log phase batch result refused');
        return;
      }
      for (const [sid, logs, error] of parsed) {
        const sink = sinks.get(sid);
        if (!sink) continue;
        if (Array.isArray(logs) && logs.length) sink.logs(logs);
        if (error) sink.failed(error);
      }
    } catch (err) {
      this.#logger.error({ err, tenant: this.#sandbox.tenant }, 'log phase batch result could not be read');
    }
  }
}
