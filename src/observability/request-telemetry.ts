/**
 * The exchange's hooks into tracing and per-phase metrics, kept here so the exchange stays a few
 * calls long. Nothing here runs unless it is on: `startRequestTracing()` returns undefined when the
 * generation has no `tracing:` config, and the exchange wraps a request's script session with
 * `observeSession()` only when metrics or tracing are on.
 *
 * Spans of a sampled request: `<METHOD> <route>` (server) → one span per phase script crossing
 * (`script <phase>`) and one per upstream try (`upstream <name>`, client), whose span id is the
 * parent in the `traceparent` sent upstream. The deferred, batched log phase has no span.
 */
import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { Phase } from '../config/schema.ts';
import type { BalancerInput, RequestPhasesResult, ResponseHead, ScriptRequest, ScriptSession } from '../phases/contract.ts';
import { phaseDuration, traceSpansDropped } from './metrics.ts';
import { OtlpExporter } from './otlp-exporter.ts';
import { SPAN_KIND, Tracer, setTraceHeaders, type RequestTrace, type Span } from './tracing.ts';

type TracingConfig = NonNullable<Config['tracing']>;

const tracers = new Map<string, Tracer>();

/** The tracer of a `tracing:` config, shared by every generation with the same settings. */
export function tracerFor(cfg: TracingConfig, logger: Logger): Tracer {
  const key = JSON.stringify(cfg);
  let t = tracers.get(key);
  if (!t) {
    const exporter = new OtlpExporter({ endpoint: cfg.otlp_endpoint, serviceName: cfg.service_name, maxQueue: cfg.max_queue, flushMs: cfg.flush_interval, logger, onDrop: (n) => traceSpansDropped.inc(n) });
    tracers.set(key, (t = new Tracer(exporter, cfg.sample_ratio)));
  }
  return t;
}

/** Sends every queued span (process exit, tests). */
export async function flushTraces(): Promise<void> {
  await Promise.all([...tracers.values()].map((t) => t.exporter.flush()));
}

/** One request's trace: the server span, the upstream try spans, and the traceparent sent upstream. */
export class RequestTracing {
  readonly trace: RequestTrace;
  #upstream: Span | undefined;
  #tpAt = -1;

  constructor(trace: RequestTrace) {
    this.trace = trace;
  }

  get traceId(): string {
    return this.trace.traceId;
  }

  /** Puts `traceparent` (and a valid incoming `tracestate`) into the upstream header list. */
  upstreamHeaders(headers: string[]): void {
    this.#tpAt = setTraceHeaders(headers, this.trace.traceparentFor(this.trace.root.spanId), this.trace.tracestate);
  }

  /** A new upstream try: ends the previous one's span as failed, starts a span and points traceparent at it. */
  upstreamTry(headers: string[], upstream: string, target: string, attempt: number): void {
    if (this.#upstream) {
      this.#upstream.error = true;
      this.#upstream.end();
    }
    const span = this.trace.child(`upstream ${upstream}`, SPAN_KIND.client);
    span.attributes['scriptgate.upstream'] = upstream;
    // server.address is the host alone, server.port the port (semantic conventions).
    const colon = target.lastIndexOf(':');
    span.attributes['server.address'] = colon > 0 ? target.slice(0, colon).replace(/^\[|\]$/g, '') : target;
    if (colon > 0) span.attributes['server.port'] = Number(target.slice(colon + 1));
    span.attributes['scriptgate.attempt'] = attempt;
    this.#upstream = span;
    if (this.#tpAt >= 0) headers[this.#tpAt] = this.trace.traceparentFor(span.spanId);
  }

  /** The upstream answered (`status`) or failed (`error`). */
  upstreamDone(status: number, error?: string): void {
    const span = this.#upstream;
    if (!span) return;
    this.#upstream = undefined;
    if (status) span.attributes['http.response.status_code'] = status;
    if (error) {
      span.attributes['error.type'] = error;
      span.error = true;
    }
    span.end();
  }

  /** Ends the request span (after the response is closed). */
  finish(method: string, route: string | undefined, status: number, error: string): void {
    this.upstreamDone(0, error || undefined);
    const a = this.trace.root.attributes;
    a['http.request.method'] = method;
    a['http.response.status_code'] = status;
    if (route) {
      a['http.route'] = route;
      // "{method} {route}": the span name the conventions ask for once the route is known.
      this.trace.root.name = `${method} ${route}`;
    }
    if (error) a['error.type'] = error;
    this.trace.root.error = status >= 500 || !!error;
    this.trace.root.end();
  }
}

/** Starts a request's trace when the generation's config has `tracing:`; else undefined (no allocation). */
export function startRequestTracing(config: Config, logger: Logger, req: IncomingMessage, scheme?: 'http' | 'https'): RequestTracing | undefined {
  const cfg = config.tracing;
  if (!cfg) return undefined;
  const trace = tracerFor(cfg, logger).startTrace(req.headers.traceparent, req.headers.tracestate, `${req.method ?? 'GET'}`);
  // OpenTelemetry's HTTP server span attributes (semantic conventions): what was asked, and by whom.
  const a = trace.root.attributes;
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  a['url.path'] = q < 0 ? url : url.slice(0, q);
  if (scheme) a['url.scheme'] = scheme;
  if (req.socket?.remoteAddress) a['client.address'] = req.socket.remoteAddress;
  const host = (req.headers[':authority'] as string | undefined) ?? req.headers.host;
  if (host) a['server.address'] = host.replace(/:\d+$/, '');
  a['network.protocol.version'] = req.httpVersion;
  return new RequestTracing(trace);
}

/**
 * Wraps a request's script session so each crossing is timed into
 * `scriptgate_phase_duration_seconds{tenant,phase}` (when `metrics`) and gets a span (when traced).
 * Phases a route does not define are not recorded (headerFilter then only stores the head).
 */
export function observeSession(session: ScriptSession, has: Readonly<Record<Phase, boolean>>, tenant: string, metrics: boolean, tracing: RequestTracing | undefined): ScriptSession {
  const requestPhase = has.rewrite && has.access ? 'rewrite+access' : has.rewrite ? 'rewrite' : 'access';
  const responsePhase = has.header_filter && has.body_filter ? 'header_filter+body_filter' : has.header_filter ? 'header_filter' : 'body_filter';
  function timed<T>(phase: string, run: () => T): T {
    const span = tracing?.trace.child(`script ${phase}`);
    if (span) {
      span.attributes['scriptgate.tenant'] = tenant;
      span.attributes['scriptgate.phase'] = phase;
    }
    const t0 = performance.now();
    try {
      return run();
    } catch (err) {
      if (span) {
        span.error = true;
        span.attributes['error.type'] = (err as { code?: string }).code ?? 'PRX_ERR_SCRIPT';
      }
      throw err;
    } finally {
      if (metrics) phaseDuration.observe({ tenant, phase }, (performance.now() - t0) / 1000);
      span?.end();
    }
  }
  const wrapped: ScriptSession = {
    requestPhases: (req: ScriptRequest): RequestPhasesResult => timed(requestPhase, () => session.requestPhases(req)),
    headerFilter: (head: ResponseHead) => (has.header_filter ? timed('header_filter', () => session.headerFilter(head)) : session.headerFilter(head)),
    bodyFilter: (chunk: Buffer, eof: boolean) => (has.body_filter ? timed('body_filter', () => session.bodyFilter(chunk, eof)) : session.bodyFilter(chunk, eof)),
    log: (summary) => session.log(summary),
    close: () => session.close(),
  };
  if (session.balancer) wrapped.balancer = (input: BalancerInput) => timed('balancer', () => session.balancer!(input));
  if (session.responseStart) wrapped.responseStart = (head, chunk, eof) => timed(responsePhase, () => session.responseStart!(head, chunk, eof));
  return wrapped;
}
