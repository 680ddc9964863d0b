/**
 * Builds the ScriptHost of one generation: compiles every tenant that a route's `*_by_script` key
 * uses (one esbuild bundle per tenant, all tenants in parallel), creates one isolate per tenant
 * with its memory_mb and cpu_ms, and hands out a RouteScripts per route with scripts. Runs at
 * start, on `check` and on each reload. Default: routes without scripts get `undefined` (zero
 * cost). Throws ConfigError listing every problem at once (`file:line: message`: missing scripts,
 * compile errors, scripts without a default export, top-level throws); nothing stays allocated then.
 *
 * @example
 *   const host = await createScriptHost(loaded, logger);
 *   const rs = host.route(0); // undefined when route 0 has no scripts
 */
import type { Logger } from 'pino';
import { ConfigError, type LoadedConfig } from '../config/load.ts';
import { compileTenant, type TenantBundle } from '../compile/compile-tenant.ts';
import { InstallError, TenantSandbox } from '../sandbox/tenant-sandbox.ts';
import type { WireRoute } from '../sandbox/wire.ts';
import { SharedStore } from '../sandbox/shared-store.ts';
import { startTenantMetrics, type TenantMetricsSampler } from './tenant-metrics.ts';
import type { RouteScripts, ScriptHost } from './contract.ts';
import { LogBatch } from './log-batch.ts';
import { RouteScriptsImpl } from './route-scripts.ts';
import { planScripts, type TenantPlan } from './script-plan.ts';

/** Per-tenant figures for stats and quotas. */
export interface TenantStats {
  tenant: string;
  cpuNs: bigint;
  calls: number;
  recreations: number;
  throttled: number;
  alive: boolean;
}

export class ScriptHostImpl implements ScriptHost {
  readonly #routes: Array<RouteScriptsImpl | undefined>;
  readonly #tenants: Map<string, { sandbox: TenantSandbox; batch: LogBatch }>;
  #disposed = false;

  readonly #shared: SharedStore | undefined;

  constructor(routes: Array<RouteScriptsImpl | undefined>, tenants: Map<string, { sandbox: TenantSandbox; batch: LogBatch }>, shared?: SharedStore) {
    this.#routes = routes;
    this.#tenants = tenants;
    this.#shared = shared;
    this.#sampler = startTenantMetrics(() => [...tenants.values()].map((t) => t.sandbox));
  }

  readonly #sampler: TenantMetricsSampler;

  route(index: number): RouteScripts | undefined {
    return this.#routes[index];
  }

  /** Runs every deferred log phase and frees every closed request's state now. */
  flush(): void {
    for (const t of this.#tenants.values()) t.batch.flush();
  }

  /** The sandbox of `tenant` (tests, stats); undefined when no route of it has scripts. */
  sandbox(tenant: string): TenantSandbox | undefined {
    return this.#tenants.get(tenant)?.sandbox;
  }

  stats(): TenantStats[] {
    return [...this.#tenants.values()].map(({ sandbox: s }) => ({ tenant: s.tenant, cpuNs: s.cpuNs, calls: s.calls, recreations: s.recreations, throttled: s.throttled, alive: s.alive }));
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const t of this.#tenants.values()) {
      t.batch.flush();
      t.sandbox.dispose();
    }
    this.#sampler.stop();
    this.#shared?.release();
  }
}

function wireRoutes(plan: TenantPlan, routeCount: number, names: Array<string | undefined>, upstreams: Array<string | undefined>, scriptBody: Array<number | undefined>): Array<WireRoute | null> {
  const out: Array<WireRoute | null> = new Array(routeCount).fill(null);
  for (const [i, keys] of plan.routes) {
    const r: WireRoute = { n: names[i] ?? `#${i}`, s: keys, u: upstreams[i] ?? '' };
    if (scriptBody[i] !== undefined) r.b = scriptBody[i];
    out[i] = r;
  }
  return out;
}

/**
 * Plans and compiles every tenant's scripts without creating isolates. Used by createScriptHost, and
 * by a cluster's primary before it starts or reloads its workers (they then take the bundles from
 * the disk cache instead of compiling again). Problems are `file:line: message` lines.
 */
export async function compileScripts(loaded: LoadedConfig, logger?: Logger): Promise<{ plan: Awaited<ReturnType<typeof planScripts>>; bundles: TenantBundle[]; problems: string[] }> {
  const plan = await planScripts(loaded);
  const problems = [...plan.problems];
  const tenants = [...plan.tenants.values()];
  const compiled = await Promise.all(tenants.map((t) => compileTenant({ tenant: t.name, scriptsDir: t.scriptsDir, scripts: [...t.scripts] })));
  const bundles: TenantBundle[] = [];
  for (const r of compiled) {
    if (r.ok) {
      bundles.push(r.bundle);
      for (const w of r.bundle.warnings) logger?.warn({ tenant: r.bundle.tenant }, `script warning: ${w}`);
    } else problems.push(...r.problems);
  }
  return { plan, bundles, problems };
}

export async function createScriptHost(loaded: LoadedConfig, logger: Logger): Promise<ScriptHost> {
  const { config } = loaded;
  const { plan, bundles, problems } = await compileScripts(loaded, logger);
  const tenants = [...plan.tenants.values()];
  if (problems.length) throw new ConfigError(problems);

  const shared = Object.keys(config.shared_dicts).length ? SharedStore.forConfig(loaded.file, config.shared_dicts) : undefined;
  // Streams with scripts are installed like routes, after them (stream i at routes.length + i).
  const names = [...config.routes.map((r) => r.name), ...config.streams.map((s, i) => s.name ?? `stream#${i}`)];
  const upstreams = [...config.routes.map((r) => r.upstream), ...config.streams.map((s) => s.upstream)];
  const scriptBody = config.routes.map((r) => r.script_body);
  const created = await Promise.allSettled(
    tenants.map((t, i) =>
      TenantSandbox.create({
        bundle: bundles[i]!,
        memoryMb: t.memoryMb,
        cpuMs: t.cpuMs,
        cpuBudgetMsPerS: t.cpuBudgetMsPerS,
        logBytesPerS: t.logBytesPerS,
        routes: wireRoutes(t, names.length, names, upstreams, scriptBody),
        upstreams: Object.keys(config.upstreams),
        env: t.env,
        shared,
        logger,
      }),
    ),
  );
  const sandboxes: TenantSandbox[] = [];
  for (const r of created) {
    if (r.status === 'fulfilled') sandboxes.push(r.value);
    else if (r.reason instanceof InstallError) problems.push(...r.reason.problems);
    else problems.push(`${loaded.file}:0: cannot create isolate: ${(r.reason as Error)?.message ?? String(r.reason)}`);
  }
  if (problems.length) {
    for (const s of sandboxes) s.dispose();
    shared?.release();
    throw new ConfigError(problems);
  }

  const byTenant = new Map<string, { sandbox: TenantSandbox; batch: LogBatch }>();
  for (const s of sandboxes) byTenant.set(s.tenant, { sandbox: s, batch: new LogBatch(s, logger) });
  const routes: Array<RouteScriptsImpl | undefined> = names.map(() => undefined);
  for (const t of tenants) {
    const { sandbox, batch } = byTenant.get(t.name)!;
    for (const [i, keys] of t.routes) routes[i] = new RouteScriptsImpl(i, keys, sandbox, batch);
  }
  return new ScriptHostImpl(routes, byTenant, shared);
}
