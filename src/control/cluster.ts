/**
 * Process model. `workers: 1` runs the proxy in this process; more (or `auto` = one per core)
 * runs a node:cluster primary that forks workers sharing the listening sockets, restarts a worker
 * that dies, and on SIGTERM lets every worker drain its in-flight requests before exiting
 * (SIGINT: exit at once). SIGHUP reloads the config (in a cluster, in every worker). The admin
 * listener, when configured, runs in the single process or in the primary.
 */
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import type { Logger } from 'pino';
import { CONFIG_SNAPSHOT_ENV, ConfigError, loadConfig, parseConfig, type LoadedConfig } from '../config/load.ts';
import { GENERATION_ENV, precompileScripts, useGenerationId } from './generation.ts';
import { flushLogger } from '../observability/logger.ts';
import { ClusterMetrics, collectProcessMetrics, generationGauge, metricsContentType, metricsText, registry, reloadsTotal } from '../observability/metrics.ts';
import { errorReport, mergeErrorReports, type ErrorReport } from '../observability/error-report.ts';
import { flushTraces } from '../observability/request-telemetry.ts';
import { startAdmin } from './admin.ts';
import { answerPrimary, askWorkers } from './ask-workers.ts';
import { clusterStatusDocument, processStatus, statusDocument, type ProcessStatus } from './status.ts';
import { ProxyServer } from './proxy-server.ts';
import { createReloader, type ReloadResult } from './reload.ts';
import { watchConfigFolders } from './watch.ts';
import { reopenAccessLogs, whenAccessLogsReady } from '../observability/access-log.ts';
import { handOver, listenerKey, receiveHandles } from './upgrade.ts';
import { endEarlySignals } from './early-signals.ts';

/** Number of worker processes for a config's `workers` value. */
export function workerCount(workers: number | 'auto'): number {
  return workers === 'auto' ? Math.max(1, os.availableParallelism()) : workers;
}

interface ReloadRequest {
  type: 'scriptgate:reload';
  id: number;
  /** The id the new generation gets: the primary numbers a cluster's generations, alike in every worker. */
  generation: number;
}
interface ReloadReply {
  type: 'scriptgate:reloaded';
  id: number;
  result: ReloadResult;
}

/** File of the config a replacement worker binds its listeners from (see boundConfig). */
const BOUND_SNAPSHOT_ENV = 'SCRIPTGATE_BOUND_SNAPSHOT';

/** How long a cluster reload waits for a worker's answer before it reports that worker as silent. */
const RELOAD_ANSWER_MS = 60_000;

function countReload(result: ReloadResult): ReloadResult {
  reloadsTotal.inc({ result: result.ok ? 'success' : 'failure' });
  return result;
}

/**
 * The config whose listeners a worker binds: a worker the primary started to replace one that
 * died gets, in BOUND_SNAPSHOT_ENV, the config its siblings bound (a reload does not rebind, so it
 * must not bind a `listen` list changed by one); undefined = its own config.
 */
function boundConfig(loaded: LoadedConfig): LoadedConfig['config'] | undefined {
  const file = process.env[BOUND_SNAPSHOT_ENV];
  if (!cluster.isWorker || !file) return undefined;
  try {
    return parseConfig(readFileSync(file, 'utf8'), loaded.file).config;
  } catch {
    return undefined;
  }
}

/**
 * A cluster worker that drained: its counters go to the primary one last time (ClusterMetrics.final),
 * so what it served since the last scrape stays counted. Resolves when sent, at most after 1 s.
 */
function sendFinalMetrics(): Promise<void> | undefined {
  if (!cluster.isWorker || !process.send || !process.connected) return undefined;
  return Promise.race([
    registry.getMetricsAsJSON().then((value) => new Promise<void>((resolve) => process.send!({ type: 'scriptgate:final-metrics', value }, undefined, {}, () => resolve()))),
    new Promise<void>((resolve) => setTimeout(resolve, 1000).unref()),
  ]).catch(() => undefined);
}

/** Runs the proxy in this process until SIGTERM (drain) or SIGINT (fast); resolves once listening. */
export async function runSingle(loaded: LoadedConfig, logger: Logger): Promise<ProxyServer> {
  const inherited: Awaited<ReturnType<typeof receiveHandles>> = cluster.isWorker ? { listeners: new Map() } : await receiveHandles();
  const server = await ProxyServer.start(loaded, logger, inherited.listeners, boundConfig(loaded));
  let adminServer: import('node:http').Server | undefined;
  const reload = createReloader(server, loaded.file, logger);
  let lastReload: ReloadResult | undefined;
  let watcher: ReturnType<typeof watchConfigFolders> | undefined;
  const doReload = async () => {
    // In a cluster the primary counts reloads (once, not once per worker).
    const result = await reload();
    lastReload = cluster.isWorker ? result : countReload(result);
    generationGauge.set(server.generation.id);
    if (result.ok) watcher?.aim(server.generation.config);
    reopenAccessLogs();
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
    server
      .shutdown(true)
      .then(() => Promise.race([flushTraces(), new Promise((r) => setTimeout(r, 2000).unref())]))
      .then(() => whenAccessLogsReady())
      .then(sendFinalMetrics)
      .then(done, done);
  };
  endEarlySignals(logger);
  process.on('SIGTERM', () => stop(true));
  process.on('SIGINT', () => stop(false));
  // nginx's graceful stop: the same as SIGTERM here.
  process.on('SIGQUIT', () => stop(true));
  process.on('SIGHUP', () => void doReload());
  // logrotate's signal (nginx -s reopen): access-log files are opened again by their path.
  process.on('SIGUSR1', () => reopenAccessLogs());
  if (!cluster.isWorker) {
    let upgrading = false;
    process.on('SIGUSR2', () => {
      if (stopping) return;
      if (upgrading) return logger.warn('SIGUSR2 ignored: an upgrade is already under way');
      upgrading = true;
      const bound = server.bound;
      const sockets = [
        ...server.listeners.map((l, i) => ({ key: listenerKey('http', bound.listen[i]!.address), server: l.server })),
        ...server.streams.map((s, i) => ({ key: listenerKey('stream', bound.streams[i]!.address), server: s.server })),
      ];
      // The successor's first generation continues this process's numbering (a metric that drops reads as a restart).
      void handOver(sockets, adminServer, logger, { [GENERATION_ENV]: String(server.generation.id + 1) }).then((ok) => {
        upgrading = false;
        if (ok) {
          adminServer?.close();
          stop(true);
        }
      });
    });
  }
  if (!cluster.isWorker) {
    watcher = watchConfigFolders(loaded.file, loaded.config, (what) => {
      logger.info({ changed: what }, 'change seen; reloading');
      void doReload();
    }, logger);
  }
  if (cluster.isWorker && loaded.config.admin) {
    // The primary's admin API asks each worker for these (ask-workers.ts).
    collectProcessMetrics();
    answerPrimary('metrics', () => registry.getMetricsAsJSON());
    answerPrimary('status', () => processStatus(server));
    answerPrimary('errors', () => errorReport());
  }
  if (cluster.isWorker) {
    process.on('message', (msg: ReloadRequest) => {
      if (msg?.type !== 'scriptgate:reload') return;
      useGenerationId(msg.generation);
      void doReload().then((result) => process.send!({ type: 'scriptgate:reloaded', id: msg.id, result } satisfies ReloadReply));
    });
  } else if (loaded.config.admin) {
    collectProcessMetrics();
    adminServer = await startAdmin({
      inherited: inherited.admin,
      address: loaded.config.admin.address,
      token: () => server.generation.config.admin?.token,
      logger,
      reload: doReload,
      metrics: () => metricsText(false),
      metricsContentType,
      status: () => statusDocument(loaded, server, lastReload),
      errors: () => errorReport(),
    });
  }
  if (process.send && process.connected) process.send({ type: 'scriptgate:listening', ports: server.ports }, undefined, {}, () => undefined);
  return server;
}

/** Primary of a cluster: forks `n` workers (each runs `runSingle`) and supervises them. */
export async function runPrimary(n: number, loaded: LoadedConfig, logger: Logger): Promise<void> {
  let stopping = false;
  // Round-robin: the primary accepts and hands each connection to the next worker. (Leaving it to
  // the kernel, SCHED_NONE, measured lopsided here: one worker often took every keep-alive
  // connection.) It costs one IPC hand-off per connection, not per request.
  cluster.schedulingPolicy = cluster.SCHED_RR;
  // Workers load the config text this primary validated last (load.ts CONFIG_SNAPSHOT_ENV).
  const snapshot = path.join(os.tmpdir(), `scriptgate-${process.pid}.config`);
  writeFileSync(snapshot, loaded.text, { mode: 0o600 });
  // The config the workers' listeners were bound with: a replacement worker binds the same.
  const boundSnapshot = path.join(os.tmpdir(), `scriptgate-${process.pid}.bound`);
  writeFileSync(boundSnapshot, loaded.text, { mode: 0o600 });
  process.once('exit', () => {
    rmSync(snapshot, { force: true });
    rmSync(boundSnapshot, { force: true });
  });
  /**
   * The cluster's generation number: every worker's current generation has this id (workers start
   * on it, each reload the primary asks for gets the next), so `generation` reads alike across
   * workers, in /metrics and in the access log, also after a worker was replaced.
   */
  let clusterGeneration = Number(process.env[GENERATION_ENV]) || 1;
  /** The cluster generation each worker was started on. */
  const startedOn = new Map<number, number>();
  /** Workers that said they are listening (a reload is asked of these only). */
  const serving = new Set<number>();
  /** A new worker: a replacement binds what the others bound; a rolling restart's binds the current config. */
  const fork = (replacement = false): Worker => {
    const w = cluster.fork({ SCRIPTGATE_WORKER: '1', [CONFIG_SNAPSHOT_ENV]: snapshot, [GENERATION_ENV]: String(clusterGeneration), ...(replacement ? { [BOUND_SNAPSHOT_ENV]: boundSnapshot } : {}) });
    startedOn.set(w.id, clusterGeneration);
    return w;
  };
  const retiring = new Set<number>();
  /** New workers of a rolling restart not yet listening: not replaced if they die. */
  const probation = new Set<number>();
  cluster.on('exit', (worker, code, signal) => {
    clusterMetrics.exited(worker.id);
    serving.delete(worker.id);
    startedOn.delete(worker.id);
    // A worker that dies during a reload is not waited for: its replacement starts on the new config.
    for (const [id, p] of pending) if (p.waiting.delete(worker.id)) settleReload(id);
    if (retiring.delete(worker.id)) return;
    // A new worker of a rolling restart that never came up: the restart keeps the old ones, and
    // starting the same broken code again and again would be a crash loop.
    if (probation.delete(worker.id)) return;
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        logger.info('all workers exited');
        flushLogger();
        process.exit(0);
      }
      return;
    }
    logger.error({ worker: worker.id, workerPid: worker.process.pid, code, signal }, 'worker died; starting another');
    setTimeout(() => fork(true), 250).unref();
  });
  const stop = (signal: 'SIGTERM' | 'SIGINT') => {
    if (stopping && signal === 'SIGTERM') return;
    stopping = true;
    logger.info({ signal }, 'stopping workers');
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill(signal);
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
  };
  endEarlySignals(logger);
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // nginx's graceful stop: the workers drain as on SIGTERM.
  process.on('SIGQUIT', () => stop('SIGTERM'));

  const clusterMetrics = new ClusterMetrics();
  let reloadId = 0;
  let lastReload: ReloadResult | undefined;
  /** Cluster reloads waiting for their workers' answers: by reload id, the workers yet to answer. */
  const pending = new Map<number, { waiting: Set<number>; results: ReloadResult[]; done: (r: ReloadResult) => void }>();
  let adminToken = loaded.config.admin?.token;
  /**
   * Reloads the cluster: the primary loads the config and compiles its scripts once (a problem
   * stops here, and no worker is asked), then every worker reloads from the compiled bundles. The
   * result is the first failure, else the last success.
   */
  let watcher: ReturnType<typeof watchConfigFolders> | undefined;
  const reloadOnce = async (): Promise<ReloadResult> => {
    let fresh: LoadedConfig;
    try {
      fresh = await loadConfig(loaded.file);
      const problems = await precompileScripts(fresh, logger);
      if (problems.length) throw new ConfigError(problems);
      writeFileSync(snapshot, fresh.text, { mode: 0o600 });
      clusterGeneration++;
      watcher?.aim(fresh.config);
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems : [`${loaded.file}: ${(err as Error).message}`];
      logger.error({ problems }, 'reload failed; the running configuration keeps serving');
      lastReload = countReload({ ok: false, problems, at: new Date().toISOString() });
      return lastReload;
    }
    const result = await askWorkersToReload();
    if (result.ok) adminToken = fresh.config.admin?.token;
    return result;
  };
  // One reload at a time, in the order asked (as one process does: reload.ts): an older, slower
  // reload must not finish after a newer one and leave the workers on the older config.
  let reloadChain: Promise<unknown> = Promise.resolve();
  const reloadAll = (): Promise<ReloadResult> => {
    const run = reloadChain.then(reloadOnce);
    reloadChain = run.catch(() => undefined);
    return run;
  };
  const askWorkersToReload = (): Promise<ReloadResult> =>
    new Promise((resolve) => {
      // A worker still starting is not asked (it would not hear the request): once listening it
      // reloads if it started before this config (see 'scriptgate:listening' below).
      const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w && serving.has(w.id));
      const id = ++reloadId;
      // A worker that is stopped (or hangs) must not hold the answer forever.
      const timer = setTimeout(() => {
        const p = pending.get(id);
        if (!p) return;
        pending.delete(id);
        p.done({ ok: false, problems: [`workers ${[...p.waiting].join(', ')} did not answer the reload within ${RELOAD_ANSWER_MS / 1000} s`], at: new Date().toISOString() });
      }, RELOAD_ANSWER_MS);
      timer.unref();
      pending.set(id, {
        waiting: new Set(workers.map((w) => w.id)),
        results: [],
        done: (r) => {
          clearTimeout(timer);
          lastReload = countReload(r);
          resolve(r);
        },
      });
      for (const w of workers) w.send({ type: 'scriptgate:reload', id, generation: clusterGeneration } satisfies ReloadRequest);
      settleReload(id);
    });
  /** Ends reload `id` once no worker is left to answer: the first failure, else the last success. */
  const settleReload = (id: number): void => {
    const p = pending.get(id);
    if (!p || p.waiting.size > 0) return;
    pending.delete(id);
    const failed = p.results.find((r) => !r.ok);
    p.done(failed ?? p.results[p.results.length - 1] ?? { ok: false, problems: ['no worker was running to reload'], at: new Date().toISOString() });
  };
  process.on('SIGHUP', () => void reloadAll());
  process.on('SIGUSR1', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGUSR1');
  });
  watcher = watchConfigFolders(loaded.file, loaded.config, (what) => {
    logger.info({ changed: what }, 'change seen; reloading every worker');
    void reloadAll();
  }, logger);

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
    // New code: the new workers' generation is the next one.
    clusterGeneration++;
    for (const w of old) {
      const fresh = fork();
      probation.add(fresh.id);
      const ok = await new Promise<boolean>((resolve) => {
        const onMsg = (msg: { type?: string }) => {
          if (msg?.type !== 'scriptgate:listening') return;
          fresh.off('message', onMsg);
          probation.delete(fresh.id);
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
    // Every worker now runs (and listens as) the current config: replacements bind that.
    copyFileSync(snapshot, boundSnapshot);
    logger.info('rolling restart done');
  };
  process.on('SIGUSR2', () => void rollingRestart());

  let listening = 0;
  cluster.on('message', (_w, msg: { type?: string; ports?: number[]; value?: unknown } | ReloadReply) => {
    if (msg?.type === 'scriptgate:listening') {
      serving.add(_w.id);
      // Started before the config it should run was reloaded in: reload it now (nobody waits for the answer).
      if ((startedOn.get(_w.id) ?? clusterGeneration) < clusterGeneration) {
        startedOn.set(_w.id, clusterGeneration);
        _w.send({ type: 'scriptgate:reload', id: 0, generation: clusterGeneration } satisfies ReloadRequest);
      }
      if (++listening === n && !restarting) {
        logger.info({ workers: n }, 'all workers listening');
        if (process.send) process.send({ type: 'scriptgate:listening', ports: (msg as { ports?: number[] }).ports });
      }
    }
    // A draining worker's last counts, so that what it served since the last scrape is not lost.
    if (msg?.type === 'scriptgate:final-metrics') clusterMetrics.final(_w.id, (msg as { value?: unknown }).value);
    if (msg?.type === 'scriptgate:reloaded') {
      const reply = msg as ReloadReply;
      const p = pending.get(reply.id);
      if (!p || !p.waiting.delete(_w.id)) return;
      p.results.push(reply.result);
      settleReload(reply.id);
    }
  });
  // Compile every tenant once here; the workers find the bundles in the disk cache.
  const problems = await precompileScripts(loaded, logger);
  if (problems.length) throw new ConfigError(problems);
  // Now that the bundles are built, the watch covers the folders of the files they import too.
  watcher?.aim(loaded.config);
  for (let i = 0; i < n; i++) fork();

  if (loaded.config.admin) {
    collectProcessMetrics();
    generationGauge.set(0); // the workers' value wins (max)
    await startAdmin({
      address: loaded.config.admin.address,
      token: () => adminToken,
      logger,
      reload: reloadAll,
      // Workers' metrics summed (prom-client aggregators), with the primary's own (reloads, process).
      metrics: async () => clusterMetrics.text(await askWorkers<unknown[]>('metrics')),
      metricsContentType,
      status: async () => clusterStatusDocument(loaded, await askWorkers<ProcessStatus>('status'), n, lastReload),
      errors: async () => mergeErrorReports((await askWorkers<ErrorReport>('errors')).map((a) => a.value)),
    });
  }
}
