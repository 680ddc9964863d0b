/**
 * Per-tenant sandbox metrics of one generation: every second (and once more at dispose) the
 * ScriptHost's sampler turns each tenant's running totals (CPU ns, calls, throttled requests,
 * recreations) into counter increments and reads the isolate's heap (about 5 µs per tenant, so
 * never per request). Declared in src/observability/metrics.ts.
 *
 * @example
 *   const sampler = startTenantMetrics(() => sandboxes);   // sampler.stop() with the generation
 */
import type { TenantSandbox } from '../sandbox/tenant-sandbox.ts';
import { isolateHeapBytes, isolateRestarts, tenantCpuSeconds, tenantScriptCalls, tenantThrottled } from '../observability/metrics.ts';

interface Seen {
  cpuNs: bigint;
  calls: number;
  throttled: number;
  recreations: number;
}

export interface TenantMetricsSampler {
  /** Takes a sample now (tests). */
  sample(heap?: boolean): void;
  /** Final sample (counters only) and no more timers. */
  stop(): void;
}

export function startTenantMetrics(sandboxes: () => Iterable<TenantSandbox>, intervalMs = 1000): TenantMetricsSampler {
  const seen = new WeakMap<TenantSandbox, Seen>();
  function sample(heap = true): void {
    for (const sb of sandboxes()) {
      const tenant = sb.tenant;
      const last = seen.get(sb) ?? { cpuNs: 0n, calls: 0, throttled: 0, recreations: 0 };
      if (sb.cpuNs > last.cpuNs) tenantCpuSeconds.inc({ tenant }, Number(sb.cpuNs - last.cpuNs) / 1e9);
      if (sb.calls > last.calls) tenantScriptCalls.inc({ tenant }, sb.calls - last.calls);
      if (sb.throttled > last.throttled) tenantThrottled.inc({ tenant }, sb.throttled - last.throttled);
      if (sb.recreations > last.recreations) isolateRestarts.inc({ tenant }, sb.recreations - last.recreations);
      seen.set(sb, { cpuNs: sb.cpuNs, calls: sb.calls, throttled: sb.throttled, recreations: sb.recreations });
      if (!heap) continue;
      const h = sb.heapStatistics();
      if (!h) continue;
      isolateHeapBytes.set({ tenant, kind: 'used' }, h.used_heap_size + h.externally_allocated_size);
      isolateHeapBytes.set({ tenant, kind: 'total' }, h.total_heap_size);
      isolateHeapBytes.set({ tenant, kind: 'limit' }, h.heap_size_limit);
    }
  }
  const timer = setInterval(sample, intervalMs);
  timer.unref();
  return {
    sample,
    stop() {
      clearInterval(timer);
      sample(false);
    },
  };
}
