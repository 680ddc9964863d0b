/**
 * Per-tenant CPU budget (cpu_budget_ms_per_s): a tenant whose scripts spin is refused with
 * PRX_ERR_TENANT_THROTTLED (503) once its CPU debt passes a second's budget, another tenant is not,
 * and the offender is admitted again once the debt has drained. Real isolates.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERRORS, isProxyError } from '../../../src/errors.ts';
import { registry } from '../../../src/observability/metrics.ts';
import { startTenantMetrics } from '../../../src/phases/tenant-metrics.ts';
import { config, fixture, request, type Fixture } from '../phases/fixture.ts';

let f: Fixture;
beforeAll(async () => {
  f = await fixture({
    'scriptgate.yaml': config(
      `  - name: hog\n    tenant: hog\n    match: { path_prefix: /hog }\n    access_by_script: spin.ts\n  - name: calm\n    tenant: calm\n    match: { path_prefix: /calm }\n    access_by_script: calm.ts\n`,
      'tenants:\n  hog: { cpu_ms: 1000, cpu_budget_ms_per_s: 40, scripts: hog }\n  calm: { cpu_ms: 1000, scripts: calm }\n',
    ),
    'hog/spin.ts': 'export default function (ctx: any) { const end = Date.now() + 30; while (Date.now() < end) {} ctx.vars.x = 1; }',
    'calm/calm.ts': 'export default function (ctx: any) { ctx.request.headers.set("x-calm", "1"); }',
  });
});
afterAll(() => f.cleanup());

function run(route: number): string {
  const s = f.host.route(route)!.open(request(), f.logger);
  try {
    s.requestPhases(request());
    return 'ok';
  } catch (err) {
    return isProxyError(err) ? err.code : String(err);
  } finally {
    s.close();
  }
}

describe('cpu_budget_ms_per_s', () => {
  it('throttles the spinning tenant only, logs it once, and admits it again after the debt drains', async () => {
    // Each call spins ~30 ms of wall time (CPU may be less on a loaded machine): the budget is 40 ms/s.
    const results: string[] = [];
    while (results.length < 60 && results.at(-1) !== 'PRX_ERR_TENANT_THROTTLED') results.push(run(0));
    expect(results[0]).toBe('ok');
    expect(results.at(-1)).toBe('PRX_ERR_TENANT_THROTTLED');
    expect(results.slice(0, -1).every((r) => r === 'ok')).toBe(true);
    for (let i = 0; i < 3; i++) expect(run(0)).toBe('PRX_ERR_TENANT_THROTTLED');
    expect(ERRORS.PRX_ERR_TENANT_THROTTLED.status).toBe(503);
    expect(run(1)).toBe('ok');
    expect(f.logs.filter((l) => l.code === 'PRX_ERR_TENANT_THROTTLED' && l.tenant === 'hog')).toHaveLength(1);
    const hog = f.host.stats().find((t) => t.tenant === 'hog')!;
    expect(hog.throttled).toBe(4);
    expect(Number(hog.cpuNs) / 1e6).toBeGreaterThan(40);
    // Debt is at most ~60 ms + slack above a 40 ms budget draining at 40 ms/s: under a second.
    await new Promise((r) => setTimeout(r, 1200));
    expect(run(0)).toBe('ok');
  });

  it('per-tenant metrics: CPU seconds, calls, throttled requests and isolate heap, sampled off the request path', async () => {
    const hog = f.host.sandbox('hog')!;
    const calm = f.host.sandbox('calm')!;
    const sampler = startTenantMetrics(() => [hog, calm], 60_000);
    sampler.sample();
    const value = async (name: string, labels: Record<string, string>) => {
      const m = (await registry.getSingleMetric(name)!.get()).values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x));
      return m?.value ?? 0;
    };
    expect(await value('scriptgate_tenant_cpu_seconds_total', { tenant: 'hog' })).toBeGreaterThan(0.04);
    expect(await value('scriptgate_tenant_throttled_total', { tenant: 'hog' })).toBeGreaterThanOrEqual(4);
    expect(await value('scriptgate_tenant_script_calls_total', { tenant: 'calm' })).toBeGreaterThanOrEqual(1);
    expect(await value('scriptgate_isolate_heap_bytes', { tenant: 'calm', kind: 'used' })).toBeGreaterThan(100_000);
    const before = await value('scriptgate_tenant_script_calls_total', { tenant: 'calm' });
    run(1);
    sampler.stop();
    expect(await value('scriptgate_tenant_script_calls_total', { tenant: 'calm' })).toBeGreaterThanOrEqual(before + 1);
  });
});
