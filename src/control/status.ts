/**
 * The body of `GET /status`. `processStatus()` describes one proxy process (its generation, routes,
 * upstream health, tenants and their isolates); a single process serves it with `statusDocument()`,
 * a cluster primary asks every worker for theirs (ask-workers.ts) and merges them with
 * `clusterStatusDocument()`: generation and routes from the first worker, per-worker figures
 * listed, upstream targets healthy only when healthy in every worker, tenant counters summed.
 */
import type { LoadedConfig } from '../config/load.ts';
import { VERSION } from '../version.ts';
import type { ReloadResult } from './reload.ts';
import type { ProxyServer } from './proxy-server.ts';
import type { WorkerAnswer } from './ask-workers.ts';

const startedAt = new Date();

export interface TenantStatus {
  name: string;
  memoryMb: number;
  cpuMs: number;
  logLevel?: string;
  routes: string[];
  /** Present when the tenant has scripts (an isolate). */
  isolate?: { alive: boolean; calls: number; cpuMs: number; recreations: number; heapUsedBytes?: number };
}

export interface UpstreamStatus {
  name: string;
  targets: Array<{ address: string; healthy: boolean; inFlight: number; weight: number; [k: string]: unknown }>;
  [k: string]: unknown;
}

export interface ProcessStatus {
  pid: number;
  generation: { id: number; loadedAt: string; activeRequests: number };
  routes: Array<{ name: string; match: unknown; upstream?: string; tenant: string }>;
  upstreams: UpstreamStatus[];
  tenants: TenantStatus[];
  memory: { rssBytes: number; heapUsedBytes: number };
}

interface TenantStatsLike {
  tenant: string;
  cpuNs: bigint;
  calls: number;
  recreations: number;
  alive: boolean;
}
interface ScriptsLike {
  stats?: () => TenantStatsLike[];
  sandbox?: (t: string) => { heapStatistics?: () => { used_heap_size: number } | undefined } | undefined;
}

/** What this process serves right now. */
export function processStatus(server: ProxyServer): ProcessStatus {
  const gen = server.generation;
  const cfg = gen.config;
  const scripts = gen.scripts as unknown as ScriptsLike | undefined;
  const stats = new Map((scripts?.stats?.() ?? []).map((s) => [s.tenant, s]));
  const tenantNames = new Set(['default', ...Object.keys(cfg.tenants)]);
  const tenants: TenantStatus[] = [];
  for (const name of tenantNames) {
    const t = cfg.tenants[name];
    const routes = gen.router.routes.filter((r) => r.config.tenant === name).map((r) => r.name);
    if (routes.length === 0 && (!t || name === 'default')) continue; // the implicit default tenant shows only when used
    const s = stats.get(name);
    let heapUsedBytes: number | undefined;
    try {
      heapUsedBytes = scripts?.sandbox?.(name)?.heapStatistics?.()?.used_heap_size;
    } catch {
      /* isolate going away */
    }
    tenants.push({
      name,
      memoryMb: t?.memory_mb ?? 64,
      cpuMs: t?.cpu_ms ?? 50,
      ...(t?.log_level ? { logLevel: t.log_level } : {}),
      routes,
      ...(s ? { isolate: { alive: s.alive, calls: s.calls, cpuMs: Number(s.cpuNs) / 1e6, recreations: s.recreations, ...(heapUsedBytes !== undefined ? { heapUsedBytes } : {}) } } : {}),
    });
  }
  const mem = process.memoryUsage();
  return {
    pid: process.pid,
    generation: { id: gen.id, loadedAt: gen.loadedAt.toISOString(), activeRequests: gen.active },
    routes: gen.router.routes.map((r) => ({ name: r.name, match: r.config.match, upstream: r.config.upstream, tenant: r.config.tenant })),
    upstreams: [...gen.upstreams.values()].map((u) => u.status() as unknown as UpstreamStatus),
    tenants,
    memory: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed },
  };
}

function common(loaded: LoadedConfig) {
  return {
    version: VERSION,
    pid: process.pid,
    startedAt: startedAt.toISOString(),
    uptimeSeconds: Math.round(process.uptime()),
    config: loaded.file,
  };
}

/** `/status` of a single process. */
export function statusDocument(loaded: LoadedConfig, server: ProxyServer, lastReload: ReloadResult | undefined): unknown {
  const p = processStatus(server);
  return { ...common(loaded), workers: 1, generation: p.generation, routes: p.routes, upstreams: p.upstreams, tenants: p.tenants, memory: p.memory, lastReload };
}

/** `/status` of a cluster primary, from its workers' answers. */
export function clusterStatusDocument(loaded: LoadedConfig, answers: Array<WorkerAnswer<ProcessStatus>>, expected: number, lastReload: ReloadResult | undefined): unknown {
  const first = answers[0]?.value;
  const upstreams: UpstreamStatus[] = first ? structuredClone(first.upstreams) : [];
  for (const a of answers.slice(1)) {
    for (const u of upstreams) {
      const other = a.value.upstreams.find((x) => x.name === u.name);
      for (const t of u.targets) {
        const o = other?.targets.find((x) => x.address === t.address);
        if (o) {
          t.healthy = t.healthy && o.healthy;
          t.inFlight += o.inFlight;
        }
      }
    }
  }
  const tenants: TenantStatus[] = first ? structuredClone(first.tenants) : [];
  for (const a of answers.slice(1)) {
    for (const t of tenants) {
      const o = a.value.tenants.find((x) => x.name === t.name)?.isolate;
      if (!t.isolate || !o) continue;
      t.isolate.calls += o.calls;
      t.isolate.cpuMs += o.cpuMs;
      t.isolate.recreations += o.recreations;
      t.isolate.alive = t.isolate.alive && o.alive;
      if (t.isolate.heapUsedBytes !== undefined && o.heapUsedBytes !== undefined) t.isolate.heapUsedBytes += o.heapUsedBytes;
    }
  }
  return {
    ...common(loaded),
    workers: answers.map((a) => ({ id: a.worker, pid: a.pid, generation: a.value.generation.id, activeRequests: a.value.generation.activeRequests, memory: a.value.memory })),
    workersExpected: expected,
    generation: first?.generation,
    routes: first?.routes ?? [],
    upstreams,
    tenants,
    lastReload,
  };
}
