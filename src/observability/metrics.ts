/**
 * Every Prometheus metric scriptgate exports, declared in this one file (prom-client, default
 * registry). Recording is on only when the config has an `admin` listener to scrape it from, so a
 * proxy without admin pays nothing per request. Labels are bounded: route names come from the
 * config, methods outside the standard set become OTHER, statuses are grouped by class.
 * In a cluster the primary serves the sum over its workers (prom-client's AggregatorRegistry).
 */
import client from 'prom-client';

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE']);

export const registry = client.register;

export const requestsTotal = new client.Counter({
  name: 'scriptgate_requests_total',
  help: 'Requests finished, by route, method and status class (1xx..5xx; "aborted" when the client left first or was cut off for its own slowness; a response cut because the upstream failed counts as 5xx)',
  labelNames: ['route', 'method', 'status_class'] as const,
});

export const requestDuration = new client.Histogram({
  name: 'scriptgate_request_duration_seconds',
  help: 'Time from request head to the end of the response, by route',
  labelNames: ['route'] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
});

export const responseBytes = new client.Counter({
  name: 'scriptgate_response_body_bytes_total',
  help: 'Response body bytes sent to clients, by route',
  labelNames: ['route'] as const,
});

export const requestBytes = new client.Counter({
  name: 'scriptgate_request_body_bytes_total',
  help: 'Request body bytes read from clients, by route',
  labelNames: ['route'] as const,
});

/** Protocols of `activeConnections` (a fixed set: bounded labels). */
export type ConnectionProtocol = 'http1' | 'h2' | 'websocket';

export const activeConnections = new client.Gauge({
  name: 'scriptgate_active_connections',
  help: 'Client connections open now, by protocol (http1 | h2 | websocket)',
  labelNames: ['protocol'] as const,
});

export const upstreamDuration = new client.Histogram({
  name: 'scriptgate_upstream_duration_seconds',
  help: 'Time from sending an upstream request to its response head (time to first byte), by upstream; every try counts',
  labelNames: ['upstream'] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
});

export const phaseDuration = new client.Histogram({
  name: 'scriptgate_phase_duration_seconds',
  help: 'Wall time of one phase script crossing, by tenant and phase (rewrite, access, rewrite+access, balancer, header_filter, body_filter, header_filter+body_filter)',
  labelNames: ['tenant', 'phase'] as const,
  buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
});

export const upstreamFailures = new client.Counter({
  name: 'scriptgate_upstream_failures_total',
  help: 'Failed upstream tries, by upstream and error code',
  labelNames: ['upstream', 'code'] as const,
});

export const upstreamRetries = new client.Counter({
  name: 'scriptgate_upstream_retries_total',
  help: 'Upstream tries repeated on another target, by upstream',
  labelNames: ['upstream'] as const,
});

let collectTargetHealth: (() => void) | undefined;

/** Filled in at scrape time from the live upstreams (src/upstream/live.ts registers the collector). */
export const targetUp = new client.Gauge({
  name: 'scriptgate_upstream_target_up',
  help: 'Health of each upstream target: 1 = gets traffic, 0 = failed its health checks or ejected',
  labelNames: ['upstream', 'target'] as const,
  // Across cluster workers a target is up only when every worker sends to it.
  aggregator: 'min',
  collect() {
    collectTargetHealth?.();
  },
});

/** Sets the function that refreshes `targetUp` before each scrape. */
export function onCollectTargetHealth(fn: () => void): void {
  collectTargetHealth = fn;
}

export const scriptErrors = new client.Counter({
  name: 'scriptgate_script_errors_total',
  help: 'Phase script failures, by tenant and error code (throw, timeout, memory, result, forbidden)',
  labelNames: ['tenant', 'code'] as const,
});

/* Per-tenant sandbox figures, sampled about once a second by the ScriptHost (src/phases/tenant-metrics.ts), never per request. */
export const tenantCpuSeconds = new client.Counter({
  name: 'scriptgate_tenant_cpu_seconds_total',
  help: "CPU time used by a tenant's isolate (all phases, from isolated-vm's cpuTime), by tenant",
  labelNames: ['tenant'] as const,
});

export const tenantScriptCalls = new client.Counter({
  name: 'scriptgate_tenant_script_calls_total',
  help: "Crossings into a tenant's isolate (phase calls and log batches), by tenant",
  labelNames: ['tenant'] as const,
});

export const scriptLogDropped = new client.Counter({
  name: 'scriptgate_script_log_dropped_total',
  help: 'Script log lines (ctx.log, console) dropped because their tenant was over its log_bytes_per_s, by tenant',
  labelNames: ['tenant'] as const,
});

export const tenantThrottled = new client.Counter({
  name: 'scriptgate_tenant_throttled_total',
  help: 'Requests answered 503 because their tenant was over its cpu_budget_ms_per_s, by tenant',
  labelNames: ['tenant'] as const,
});

export const isolateRestarts = new client.Counter({
  name: 'scriptgate_isolate_restarts_total',
  help: "Times a tenant's isolate was recreated (after memory exhaustion, or a timeout that cut off a built-in's first load), by tenant",
  labelNames: ['tenant'] as const,
});

export const isolateHeapBytes = new client.Gauge({
  name: 'scriptgate_isolate_heap_bytes',
  help: "Heap of a tenant's isolate (kind: used | total | limit), sampled about once a second; summed over workers",
  labelNames: ['tenant', 'kind'] as const,
});

export const reloadsTotal = new client.Counter({
  name: 'scriptgate_reloads_total',
  help: 'Config reloads, by result (success | failure)',
  labelNames: ['result'] as const,
});
// Both series exist from the start, so increase() sees the first reload of either kind.
reloadsTotal.inc({ result: 'success' }, 0);
reloadsTotal.inc({ result: 'failure' }, 0);

export const logLinesDropped = new client.Counter({
  name: 'scriptgate_log_lines_dropped_total',
  help: 'Log lines (process log on stdout, access-log files) dropped because the output took them slower than they came (over 16 MiB unwritten)',
});

export const accessLogDropped = new client.Counter({
  name: 'scriptgate_access_log_dropped_total',
  help: 'Access-log lines dropped because the syslog server could not take them (unreachable, or not reading)',
});

export const traceSpansDropped = new client.Counter({
  name: 'scriptgate_trace_spans_dropped_total',
  help: 'Finished spans dropped because the OTLP export queue was full or the collector refused or failed a batch',
});

export const generationGauge = new client.Gauge({
  name: 'scriptgate_generation',
  help: 'Id of the current configuration generation',
  // Every worker reloads together: the cluster's value is the newest, not a sum.
  aggregator: 'max',
});

let defaultsOn = false;

/** Turns on Node process metrics (CPU, memory, event-loop lag, GC). Idempotent. */
export function collectProcessMetrics(): void {
  if (defaultsOn) return;
  defaultsOn = true;
  client.collectDefaultMetrics();
}

/** `2xx`-style class of a status code. */
export function statusClass(status: number): string {
  return status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : 'other';
}

/** Bounded method label. */
export function methodLabel(method: string): string {
  return KNOWN_METHODS.has(method) ? method : 'OTHER';
}

/** Records one finished request; `bytesIn` is the request body read from the client. */
export function recordRequest(route: string, method: string, status: number, aborted: boolean, seconds: number, bytes: number, bytesIn = 0): void {
  requestsTotal.inc({ route, method: methodLabel(method), status_class: aborted ? 'aborted' : statusClass(status) });
  requestDuration.observe({ route }, seconds);
  if (bytes > 0) responseBytes.inc({ route }, bytes);
  if (bytesIn > 0) requestBytes.inc({ route }, bytesIn);
}

/** The protocol each open connection is counted under (see trackConnection). */
const countedAs = new WeakMap<object, ConnectionProtocol>();

/**
 * Counts a client connection in `activeConnections` under `protocol` until it closes. Called by the
 * listener (and the WebSocket upgrade) only when metrics are on: a socket, an HTTP/2 session or a
 * WebSocket. A connection is counted once: tracking one that is counted already moves it to
 * `protocol` (an HTTP/1.1 connection that became a WebSocket tunnel counts as websocket only), or
 * does nothing when the protocol is the same (a socket handed back to the HTTP/1.1 server).
 */
export function trackConnection(protocol: ConnectionProtocol, conn: { once(event: 'close', fn: () => void): unknown }): void {
  const before = countedAs.get(conn);
  if (before === protocol) return;
  countedAs.set(conn, protocol);
  activeConnections.inc({ protocol });
  if (before !== undefined) {
    activeConnections.dec({ protocol: before });
    return;
  }
  conn.once('close', () => {
    activeConnections.dec({ protocol: countedAs.get(conn)! });
    countedAs.delete(conn);
  });
}

/** Metrics text of this process, or the sum over the cluster's workers when called in a primary. */
export async function metricsText(clustered: boolean): Promise<string> {
  if (!clustered) return registry.metrics();
  const aggregator = new client.AggregatorRegistry();
  const merged = await aggregator.clusterMetrics();
  return merged;
}

type MetricsJson = Awaited<ReturnType<typeof registry.getMetricsAsJSON>>;

/** Per-process values that mean nothing summed: the cluster shows the largest. */
const MAX_ACROSS_PROCESSES = new Set(['process_max_fds']);

/**
 * A cluster primary's metrics: the workers' `getMetricsAsJSON()` results and the primary's own
 * registry (reloads, generation, its process metrics) merged by each metric's aggregator
 * (counters and histograms are summed, so counts are exact). Workers that exited (a crash, a
 * rolling restart) leave their last scraped counters and histograms behind, so a cluster counter
 * never goes backwards while the primary runs (Prometheus would read a reset); their gauges go.
 */
export class ClusterMetrics {
  readonly #last = new Map<number, MetricsJson>();
  /** Exited workers' counters and histograms, by worker id. */
  readonly #retired = new Map<number, MetricsJson>();

  /**
   * The text for one scrape, given each live worker's answer. A live worker that did not answer in
   * time (stopped, busy) counts with its last answer's counters and histograms, so that no counter
   * goes backwards (Prometheus would read a drop as a reset).
   */
  async text(workers: ReadonlyArray<{ worker: number; value: unknown }>): Promise<string> {
    const answered = new Set<number>();
    for (const w of workers) {
      this.#last.set(w.worker, w.value as MetricsJson);
      answered.add(w.worker);
    }
    const silent = [...this.#last].filter(([id]) => !answered.has(id)).map(([, last]) => cumulative(last));
    const own = await registry.getMetricsAsJSON();
    const all = [...workers.map((w) => w.value as MetricsJson), ...silent, ...this.#retired.values(), own].map((set) =>
      set.map((m) => (MAX_ACROSS_PROCESSES.has(m.name) ? { ...m, aggregator: 'max' as const } : m)),
    );
    return client.AggregatorRegistry.aggregate(all).metrics();
  }

  /** A worker exited: what it had counted stays in the sums. */
  exited(worker: number): void {
    const last = this.#last.get(worker);
    this.#last.delete(worker);
    if (last) this.#retired.set(worker, cumulative(last));
  }

  /**
   * A draining worker's last counts, sent just before it exits (a rolling restart): they stand for
   * it from now on, so what it served since the last scrape is not lost. Before or after `exited`.
   */
  final(worker: number, value: unknown): void {
    if (!Array.isArray(value)) return;
    if (this.#retired.has(worker)) this.#retired.set(worker, cumulative(value as MetricsJson));
    else this.#last.set(worker, value as MetricsJson);
  }
}

/** The counters and histograms of a metrics set: what still counts when its process is silent or gone. */
function cumulative(set: MetricsJson): MetricsJson {
  // At run time `type` is the exposition name ('counter'), whatever prom-client's typings say.
  return set.filter((m) => ['counter', 'histogram'].includes(String(m.type)));
}

export const metricsContentType = registry.contentType;
