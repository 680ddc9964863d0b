/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/) and the spans of one request. Runs only
 * when the config has `tracing:`; with it absent the exchange never calls in here (no allocation
 * on the hot path). Per request: `startTrace()` accepts a valid incoming `traceparent` (and its
 * `tracestate` when that is well-formed) or starts a new trace; each upstream try gets a fresh
 * span id that goes upstream as the parent in `traceparent`. Spans are recorded only when the
 * trace is sampled (the caller's sampled flag, else `sample_ratio`) and handed to the exporter.
 *
 * @example
 *   const t = tracer.startTrace(req.headers.traceparent, req.headers.tracestate);
 *   const up = t.child('upstream', SPAN_KIND.client);  // its id goes upstream
 *   headers.push('traceparent', t.traceparentFor(up.spanId));
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { OtlpExporter } from './otlp-exporter.ts';

/** OTLP span kinds. */
export const SPAN_KIND = { internal: 1, server: 2, client: 3 } as const;

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const TRACESTATE_MEMBER = /^(?:[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** A parsed, valid traceparent. */
export interface TraceParent {
  traceId: string;
  parentId: string;
  sampled: boolean;
}

/**
 * Parses a `traceparent` header; undefined when it is absent or invalid (wrong lengths, upper-case
 * hex, all-zero ids, version ff, or version 00 with trailing data), in which case a new trace starts.
 */
export function parseTraceparent(value: string | string[] | undefined): TraceParent | undefined {
  if (typeof value !== 'string') return undefined;
  const m = TRACEPARENT.exec(value.trim());
  if (!m) return undefined;
  const [, version, traceId, parentId, flags, rest] = m;
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (traceId === ZERO_TRACE || parentId === ZERO_SPAN) return undefined;
  return { traceId: traceId!, parentId: parentId!, sampled: (parseInt(flags!, 16) & 1) === 1 };
}

/** A `tracestate` kept only when every list member is well-formed and there are at most 32; else undefined. */
export function parseTracestate(value: string | string[] | undefined): string | undefined {
  const v = Array.isArray(value) ? value.join(',') : value;
  if (!v) return undefined;
  const members = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (members.length === 0 || members.length > 32 || v.length > 512) return undefined;
  const keys = new Set<string>();
  for (const m of members) {
    if (!TRACESTATE_MEMBER.test(m)) return undefined;
    const key = m.slice(0, m.indexOf('='));
    if (keys.has(key)) return undefined;
    keys.add(key);
  }
  return members.join(',');
}

/** 8 random bytes as hex (never all zero). */
export function newSpanId(): string {
  let id = randomBytes(8).toString('hex');
  while (id === ZERO_SPAN) id = randomBytes(8).toString('hex');
  return id;
}

function newTraceId(): string {
  let id = randomBytes(16).toString('hex');
  while (id === ZERO_TRACE) id = randomBytes(16).toString('hex');
  return id;
}

/** Nanoseconds since the epoch, as OTLP/JSON wants them (a decimal string). */
export function nowUnixNano(): string {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6)).toString();
}

export type AttrValue = string | number | boolean;

/** One finished span, in the shape the exporter encodes. */
export interface SpanRecord {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  start: string;
  end: string;
  attributes: Record<string, AttrValue>;
  error: boolean;
}

/** A span being timed. `end()` hands it to the exporter when the trace is sampled. */
export class Span {
  readonly spanId: string;
  readonly attributes: Record<string, AttrValue> = {};
  error = false;
  readonly #trace: RequestTrace;
  /** Set until the span ends (a server span is renamed once its route is known). */
  name: string;
  readonly #kind: number;
  readonly #parent: string;
  #start: string;
  #ended = false;

  constructor(trace: RequestTrace, name: string, kind: number, parent: string, spanId = newSpanId()) {
    this.#trace = trace;
    this.name = name;
    this.#kind = kind;
    this.#parent = parent;
    this.spanId = spanId;
    this.#start = nowUnixNano();
  }

  /** Moves the start back to an earlier moment (unix ns string), e.g. the request's arrival. */
  startedAt(unixNano: string): this {
    this.#start = unixNano;
    return this;
  }

  /** Ends the span (once); recorded when its trace is sampled. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#trace.record({
      traceId: this.#trace.traceId,
      spanId: this.spanId,
      parentSpanId: this.#parent,
      name: this.name,
      kind: this.#kind,
      start: this.#start,
      end: nowUnixNano(),
      attributes: this.attributes,
      error: this.error,
    });
  }
}

/** The trace of one request: its id, sampling decision and root (server) span. */
export class RequestTrace {
  readonly traceId: string;
  readonly sampled: boolean;
  /** The caller's span (from traceparent), '' for a new trace. */
  readonly parentId: string;
  readonly tracestate: string | undefined;
  readonly root: Span;
  readonly #exporter: OtlpExporter;

  constructor(exporter: OtlpExporter, traceId: string, parentId: string, sampled: boolean, tracestate: string | undefined, name: string) {
    this.#exporter = exporter;
    this.traceId = traceId;
    this.parentId = parentId;
    this.sampled = sampled;
    this.tracestate = tracestate;
    this.root = new Span(this, name, SPAN_KIND.server, parentId);
  }

  /** A span under the request span. */
  child(name: string, kind: number = SPAN_KIND.internal): Span {
    return new Span(this, name, kind, this.root.spanId);
  }

  /** The `traceparent` to send upstream with `spanId` (the upstream call's span) as the parent. */
  traceparentFor(spanId: string): string {
    return `00-${this.traceId}-${spanId}-${this.sampled ? '01' : '00'}`;
  }

  record(span: SpanRecord): void {
    if (this.sampled) this.#exporter.add(span);
  }
}

/** Makes request traces for one `tracing:` config. */
export class Tracer {
  readonly exporter: OtlpExporter;
  readonly #ratio: number;

  constructor(exporter: OtlpExporter, sampleRatio: number) {
    this.exporter = exporter;
    this.#ratio = sampleRatio;
  }

  /**
   * Starts a request's trace: continues a valid incoming `traceparent` (its sampled flag decides,
   * as OpenTelemetry's parent-based sampler does), else a new trace sampled with `sample_ratio`.
   */
  startTrace(traceparent: string | string[] | undefined, tracestate: string | string[] | undefined, name: string): RequestTrace {
    const parent = parseTraceparent(traceparent);
    if (parent) return new RequestTrace(this.exporter, parent.traceId, parent.parentId, parent.sampled, parseTracestate(tracestate), name);
    const sampled = this.#ratio >= 1 || (this.#ratio > 0 && Math.random() < this.#ratio);
    return new RequestTrace(this.exporter, newTraceId(), '', sampled, undefined, name);
  }
}

/**
 * Replaces `traceparent`/`tracestate` in a flat upstream header list; returns the index of the
 * traceparent value, so a retry can put its own span id there.
 */
export function setTraceHeaders(headers: string[], traceparent: string, tracestate: string | undefined): number {
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (headers[i] === 'traceparent' || headers[i] === 'tracestate') headers.splice(i, 2);
  }
  headers.push('traceparent', traceparent);
  const at = headers.length - 1;
  if (tracestate) headers.push('tracestate', tracestate);
  return at;
}
