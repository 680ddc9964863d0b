/**
 * Exports finished spans with OTLP over HTTP, JSON encoding: `POST {endpoint}/v1/traces`. Runs
 * beside the data path and never blocks it: `add()` only pushes onto a bounded queue (spans past
 * `maxQueue` are dropped and counted); a timer (`flushMs`, default 1 s, unref'd) or a full batch
 * (`maxBatch`, default 512) starts a send, one at a time, with a 5 s timeout. A failed send drops its
 * batch (logged at most once a minute). `shutdown()` sends what is left.
 *
 * @example
 *   const exp = new OtlpExporter({ endpoint: 'http://127.0.0.1:4318', serviceName: 'edge' });
 *   exp.add(span); // later, batched
 */
import http from 'node:http';
import https from 'node:https';
import type { Logger } from 'pino';
import { VERSION } from '../version.ts';
import type { AttrValue, SpanRecord } from './tracing.ts';

export interface OtlpExporterOptions {
  /** Base URL of the collector, e.g. http://127.0.0.1:4318 (`/v1/traces` is appended). */
  endpoint: string;
  serviceName: string;
  maxQueue?: number;
  maxBatch?: number;
  flushMs?: number;
  logger?: Logger;
  /** Called with the number of spans just dropped (a metric). */
  onDrop?: (n: number) => void;
}

function attr(key: string, v: AttrValue): { key: string; value: Record<string, unknown> } {
  if (typeof v === 'string') return { key, value: { stringValue: v } };
  if (typeof v === 'boolean') return { key, value: { boolValue: v } };
  return { key, value: Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v } };
}

/** The OTLP/JSON ExportTraceServiceRequest body for `spans`. */
export function encodeSpans(spans: readonly SpanRecord[], serviceName: string): string {
  return JSON.stringify({
    resourceSpans: [
      {
        resource: { attributes: [attr('service.name', serviceName), attr('process.pid', process.pid)] },
        scopeSpans: [
          {
            scope: { name: 'scriptgate', version: VERSION },
            spans: spans.map((s) => ({
              traceId: s.traceId,
              spanId: s.spanId,
              ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
              name: s.name,
              kind: s.kind,
              startTimeUnixNano: s.start,
              endTimeUnixNano: s.end,
              attributes: Object.entries(s.attributes).map(([k, v]) => attr(k, v)),
              status: { code: s.error ? 2 : 0 },
            })),
          },
        ],
      },
    ],
  });
}

export class OtlpExporter {
  readonly url: URL;
  /** Spans dropped because the queue was full or their send failed. */
  dropped = 0;
  /** Spans the collector accepted. */
  exported = 0;
  readonly #opts: Required<Omit<OtlpExporterOptions, 'logger' | 'onDrop'>> & Pick<OtlpExporterOptions, 'logger' | 'onDrop'>;
  #queue: SpanRecord[] = [];
  #timer: NodeJS.Timeout | undefined;
  #sending: Promise<void> | undefined;
  #lastWarn = 0;

  constructor(opts: OtlpExporterOptions) {
    this.#opts = { maxQueue: 2048, maxBatch: 512, flushMs: 1000, ...opts };
    this.url = new URL(opts.endpoint.replace(/\/+$/, '') + '/v1/traces');
  }

  /** Queues a finished span (drops it when the queue is full). Never throws, never waits. */
  add(span: SpanRecord): void {
    if (this.#queue.length >= this.#opts.maxQueue) {
      this.dropped++;
      this.#opts.onDrop?.(1);
      return;
    }
    this.#queue.push(span);
    if (this.#queue.length >= this.#opts.maxBatch && !this.#sending) void this.flush();
    else if (!this.#timer) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        void this.flush();
      }, this.#opts.flushMs);
      this.#timer.unref();
    }
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** Sends queued spans now (batch by batch); resolves when the queue is empty or a send failed. */
  async flush(): Promise<void> {
    while (this.#sending) await this.#sending;
    while (this.#queue.length) {
      const batch = this.#queue.splice(0, this.#opts.maxBatch);
      this.#sending = this.#send(batch);
      const ok = await this.#sending.then(
        () => true,
        (err: Error) => {
          this.dropped += batch.length;
          this.#opts.onDrop?.(batch.length);
          const now = Date.now();
          if (now - this.#lastWarn > 60_000) {
            this.#lastWarn = now;
            this.#opts.logger?.warn({ endpoint: this.url.href, err: err.message, spans: batch.length }, 'OTLP export failed; spans dropped');
          }
          return false;
        },
      );
      this.#sending = undefined;
      if (ok) this.exported += batch.length;
      else break;
    }
  }

  #send(batch: SpanRecord[]): Promise<void> {
    const body = encodeSpans(batch, this.#opts.serviceName);
    const mod = this.url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(this.url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: 5000 }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode! >= 200 && res.statusCode! < 300 ? resolve() : reject(new Error(`collector answered ${res.statusCode}`))));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Stops the timer and sends what is queued. */
  async shutdown(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }
}
