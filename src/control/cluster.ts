/**
 * Process model. `workers: 1` runs the proxy in this process; more (or `auto` = one per core)
 * runs a node:cluster primary that forks workers sharing the listening sockets, restarts a worker
 * that dies, and on SIGTERM lets every worker drain its in-flight requests before exiting
 * (SIGINT: exit at once). SIGHUP reloads the config (in a cluster, in every worker). The admin
 * listener, when configured, runs in the single process or in the primary.
 */
import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import type { Logger } from 'pino';
import type { LoadedConfig } from '../config/load.ts';
import { flushLogger } from '../observability/logger.ts';
import { collectProcessMetrics, generationGauge, metricsContentType, metricsText, reloadsTotal } from '../observability/metrics.ts';
import { startAdmin } from './admin.ts';
import { VERSION } from '../version.ts';
import { ProxyServer } from './proxy-server.ts';
import { createReloader, type ReloadResult } from './reload.ts';
import { scriptFolders, watchForChanges } from './watch.ts';
import { handOver, receiveHandles } from './upgrade.ts';

const startedAt = new Date();

/** Number of worker processes for a config's `workers` value. */
export function workerCount(workers: number | 'auto'): number {
  return workers === 'auto' ? Math.max(1, os.availableParallelism()) : workers;
}

interface ReloadRequest {
  type: 'scriptgate:reload';
  id: number;
}
interface ReloadReply {
  type: 'scriptgate:reloaded';
  id: number;
  result: ReloadResult;
}

function countReload(result: ReloadResult): ReloadResult {
  reloadsTotal.inc({ result: result.ok ? 'success' : 'failure' });
  return result;
}

/** Runs the proxy in this process until SIGTERM (drain) or SIGINT (fast); resolves once listening. */
export async function runSingle(loaded: LoadedConfig, logger: Logger): Promise<ProxyServer> {
  const inherited = cluster.isWorker ? { listeners: [] } : await receiveHandles();
  const server = await ProxyServer.start(loaded, logger, inherited.listeners);
  let adminServer: import('node:http').Server | undefined;
  const reload = createReloader(server, loaded.file, logger);
  let lastReload: ReloadResult | undefined;
  const doReload = async () => {
    lastReload = countReload(await reload());
    generationGauge.set(server.generation.id);
    return lastReload;
  };
  generationGauge.set(server.generation.id);
  let stopping = false;
  const stop = (graceful: boolean) => {
    if (stopping && graceful) return;
    stopping = true;
    logger.info({ graceful }, graceful ? 'draining in-flight requests, then exiting' : 'exiting now');
    const done = () => {
      flushLogger();
      process.exit(0);
    };
    if (!graceful) return done();
    server.shutdown(true).then(done, done);
  };
  process.on('SIGTERM', () => stop(true));
  process.on('SIGINT', () => stop(false));
  process.on('SIGHUP', () => void doReload());
  if (!cluster.isWorker) {
    process.on('SIGUSR2', () => {
      if (stopping) return;
      void handOver(server.listeners.map((l) => l.server), adminServer, logger).then((ok) => {
        if (ok) {
          adminServer?.close();
          stop(true);
        }
      });
    });
  }
  if (!cluster.isWorker && loaded.config.reload.watch) {
    watchForChanges(loaded.file, scriptFolders(loaded.config), loaded.config.reload.debounce, (what) => {
      logger.info({ changed: what }, 'change seen; reloading');
      void doReload();
    }, logger);
  }
  if (cluster.isWorker) {
    process.on('message', (msg: ReloadRequest) => {
      if (msg?.type !== 'scriptgate:reload') return;
      void doReload().then((result) => process.send!({ type: 'scriptgate:reloaded', id: msg.id, result } satisfies ReloadReply));
    });
  } else if (loaded.config.admin) {
    collectProcessMetrics();
    adminServer = await startAdmin({
      inherited: inherited.admin,
      address: loaded.config.admin.address,
      token: loaded.config.admin.token,
      logger,
      reload: doReload,
      metrics: () => metricsText(false),
      metricsContentType,
      status: () => ({
        version: VERSION,
        pid: process.pid,
        startedAt: startedAt.toISOString(),
        uptimeSeconds: Math.round(process.uptime()),
        workers: 1,
        config: loaded.file,
        generation: { id: server.generation.id, loadedAt: server.generation.loadedAt.toISOString(), activeRequests: server.generation.active },
        routes: server.generation.router.routes.map((r) => ({ name: r.name, match: r.config.match, upstream: r.config.upstream, tenant: r.config.tenant })),
        upstreams: [...server.generation.upstreams.values()].map((u) => u.status()),
        lastReload,
      }),
    });
  }
  if (process.send && process.connected) process.send({ type: 'scriptgate:listening', ports: server.ports }, undefined, {}, () => undefined);
  return server;
}

/** Primary of a cluster: forks `n` workers (each runs `runSingle`) and supervises them. */
export async function runPrimary(n: number, loaded: LoadedConfig, logger: Logger): Promise<void> {
  let stopping = false;
  // Let the kernel hand connections to workers directly (the primary does not proxy accepts).
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  const fork = (): Worker => cluster.fork({ SCRIPTGATE_WORKER: '1' });
  const retiring = new Set<number>();
  cluster.on('exit', (worker, code, signal) => {
    if (retiring.delete(worker.id)) return;
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        logger.info('all workers exited');
        flushLogger();
        process.exit(0);
      }
      return;
    }
    logger.error({ worker: worker.id, pid: worker.process.pid, code, signal }, 'worker died; starting another');
    setTimeout(fork, 250).unref();
  });
  const stop = (signal: 'SIGTERM' | 'SIGINT') => {
    if (stopping && signal === 'SIGTERM') return;
    stopping = true;
    logger.info({ signal }, 'stopping workers');
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill(signal);
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  let reloadId = 0;
  let lastReload: ReloadResult | undefined;
  const pending = new Map<number, { left: number; results: ReloadResult[]; done: (r: ReloadResult) => void }>();
  /** Asks every worker to reload; the result is the first failure, else the last success. */
  const reloadAll = (): Promise<ReloadResult> =>
    new Promise((resolve) => {
      const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w);
      const id = ++reloadId;
      pending.set(id, {
        left: workers.length,
        results: [],
        done: (r) => {
          lastReload = countReload(r);
          resolve(r);
        },
      });
      for (const w of workers) w.send({ type: 'scriptgate:reload', id } satisfies ReloadRequest);
    });
  process.on('SIGHUP', () => void reloadAll());
  if (loaded.config.reload.watch) {
    watchForChanges(loaded.file, scriptFolders(loaded.config), loaded.config.reload.debounce, (what) => {
      logger.info({ changed: what }, 'change seen; reloading every worker');
      void reloadAll();
    }, logger);
  }

  /**
   * SIGUSR2: rolling restart. Each worker in turn is replaced by a fresh one (new code from disk);
   * the old one is told to drain only once its successor is listening, so a socket is always served.
   */
  let restarting = false;
  const rollingRestart = async () => {
    if (restarting || stopping) return;
    restarting = true;
    const old = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w);
    logger.info({ workers: old.length }, 'rolling restart of workers');
    for (const w of old) {
      const fresh = fork();
      const ok = await new Promise<boolean>((resolve) => {
        const onMsg = (msg: { type?: string }) => {
          if (msg?.type !== 'scriptgate:listening') return;
          fresh.off('message', onMsg);
          resolve(true);
        };
        fresh.on('message', onMsg);
        fresh.once('exit', () => resolve(false));
      });
      if (!ok) {
        logger.error('rolling restart: a new worker failed to start; keeping the old ones');
        break;
      }
      retiring.add(w.id);
      const exited = new Promise((r) => w.once('exit', r));
      w.process.kill('SIGTERM');
      await exited;
    }
    restarting = false;
    logger.info('rolling restart done');
  };
  process.on('SIGUSR2', () => void rollingRestart());

  let listening = 0;
  cluster.on('message', (_w, msg: { type?: string; ports?: number[] } | ReloadReply) => {
    if (msg?.type === 'scriptgate:listening' && ++listening === n && !restarting) {
      logger.info({ workers: n }, 'all workers listening');
      if (process.send) process.send({ type: 'scriptgate:listening', ports: (msg as { ports?: number[] }).ports });
    }
    if (msg?.type === 'scriptgate:reloaded') {
      const reply = msg as ReloadReply;
      const p = pending.get(reply.id);
      if (!p) return;
      p.results.push(reply.result);
      if (--p.left > 0) return;
      pending.delete(reply.id);
      p.done(p.results.find((r) => !r.ok) ?? p.results[p.results.length - 1]!);
    }
  });
  for (let i = 0; i < n; i++) fork();

  if (loaded.config.admin) {
    await startAdmin({
      address: loaded.config.admin.address,
      token: loaded.config.admin.token,
      logger,
      reload: reloadAll,
      metrics: () => metricsText(true),
      metricsContentType,
      status: () => ({
        pid: process.pid,
        startedAt: startedAt.toISOString(),
        uptimeSeconds: Math.round(process.uptime()),
        workers: Object.values(cluster.workers ?? {}).map((w) => ({ id: w?.id, pid: w?.process.pid })),
        config: loaded.file,
        lastReload,
      }),
    });
  }
}
