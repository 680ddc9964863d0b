/**
 * Process model. `workers: 1` runs the proxy in this process; more (or `auto` = one per core)
 * runs a node:cluster primary that forks workers sharing the listening sockets, restarts a worker
 * that dies, and on SIGTERM lets every worker drain its in-flight requests before exiting
 * (SIGINT: exit at once). Each worker loads the config and builds its own generation.
 */
import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import type { Logger } from 'pino';
import type { LoadedConfig } from '../config/load.ts';
import { flushLogger } from '../observability/logger.ts';
import { ProxyServer } from './proxy-server.ts';

/** Number of worker processes for a config's `workers` value. */
export function workerCount(workers: number | 'auto'): number {
  return workers === 'auto' ? Math.max(1, os.availableParallelism()) : workers;
}

/** Runs the proxy in this process until SIGTERM (drain) or SIGINT (fast); resolves once listening. */
export async function runSingle(loaded: LoadedConfig, logger: Logger): Promise<ProxyServer> {
  const server = await ProxyServer.start(loaded, logger);
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
  if (process.send) process.send({ type: 'scriptgate:listening', ports: server.ports });
  return server;
}

/** Primary of a cluster: forks `n` workers (each runs `runSingle`) and supervises them. */
export function runPrimary(n: number, logger: Logger): void {
  let stopping = false;
  // Let the kernel hand connections to workers directly (the primary does not proxy accepts).
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  const fork = (): Worker => cluster.fork({ SCRIPTGATE_WORKER: '1' });
  cluster.on('exit', (worker, code, signal) => {
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
  let listening = 0;
  cluster.on('message', (_w, msg: { type?: string; ports?: number[] }) => {
    if (msg?.type === 'scriptgate:listening' && ++listening === n) {
      logger.info({ workers: n }, 'all workers listening');
      if (process.send) process.send({ type: 'scriptgate:listening', ports: msg.ports });
    }
  });
  for (let i = 0; i < n; i++) fork();
}
