/**
 * One configured upstream: its targets, each with a keep-alive undici Pool, and the balancer that
 * picks among them. Built with its generation; `close()` runs when the generation is disposed and
 * lets in-flight requests finish before the pools' connections close.
 */
import { readFileSync } from 'node:fs';
import { Pool } from 'undici';
import type { UpstreamConfig } from '../config/schema.ts';
import { parseHostPort } from '../config/units.ts';
import { leastConn, random, roundRobin, type Balancer } from './balancer.ts';

export interface Target {
  /** `host:port` as configured. */
  address: string;
  weight: number;
  pool: Pool;
  /** Requests currently dispatched to this target (least_conn reads it). */
  inFlight: number;
}

const ALGORITHMS: Record<UpstreamConfig["balance"], (targets: readonly Target[]) => Balancer<Target>> = {
  round_robin: roundRobin,
  random,
  least_conn: leastConn,
};

export class Upstream {
  readonly name: string;
  readonly config: UpstreamConfig;
  readonly targets: Target[];
  readonly #balancer: Balancer<Target>;

  constructor(name: string, config: UpstreamConfig) {
    this.name = name;
    this.config = config;
    const scheme = config.tls ? 'https' : 'http';
    const ca = config.tls?.ca ? readFileSync(config.tls.ca) : undefined;
    this.targets = config.targets.map((t) => {
      const hp = parseHostPort(t.address)!;
      const host = hp.host.includes(':') ? `[${hp.host}]` : hp.host;
      const pool = new Pool(`${scheme}://${host}:${hp.port}`, {
        connections: config.connections,
        pipelining: 1,
        keepAliveTimeout: config.timeouts.idle,
        keepAliveMaxTimeout: config.timeouts.idle,
        headersTimeout: config.timeouts.read,
        bodyTimeout: config.timeouts.read,
        connect: {
          timeout: config.timeouts.connect,
          ...(config.tls
            ? { servername: config.tls.sni, rejectUnauthorized: config.tls.verify, ...(ca ? { ca } : {}) }
            : {}),
        },
      });
      return { address: t.address, weight: t.weight, pool, inFlight: 0 };
    });
    this.#balancer = ALGORITHMS[config.balance](this.targets);
  }

  /** Next target for a try, skipping `exclude` (targets that already failed this request). */
  pick(exclude?: ReadonlySet<Target>): Target | undefined {
    return this.#balancer.pick(exclude);
  }

  /** Closes every pool once its queued and running requests are done. */
  async close(): Promise<void> {
    await Promise.all(this.targets.map((t) => t.pool.close().catch(() => undefined)));
  }
}
