/**
 * One address the proxy connects to: a configured IP target, or one resolved address of a named
 * target. Owns a keep-alive undici Pool (per upstream, so per TLS setting), the in-flight count
 * (least_conn), a peak-EWMA of response-head latency (ewma) and its health. Created by Upstream;
 * `close()` lets queued and running requests finish before the pool's connections close.
 */
import { Pool } from 'undici';
import type { UpstreamConfig } from '../config/schema.ts';
import type { Candidate } from './balancer.ts';
import { TargetHealth, type HealthPolicy } from './health.ts';
import type { TlsConnect } from './tls-options.ts';
import { protocolConnectOptions, protocolPoolOptions } from './protocol-options.ts';
import { endpointConnector } from './connector.ts';

/** Time constant of the latency average's decay, ms. */
const DECAY_MS = 10_000;

export class Endpoint implements Candidate {
  /** `ip:port` (or `host:port` for an IP-literal target, as configured): what logs show. */
  readonly address: string;
  /** Same as address; the consistent-hash ring is built from it. */
  readonly id: string;
  /** The configured target this endpoint belongs to (`name:port` for DNS targets). */
  readonly target: string;
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  readonly origin: string;
  readonly connect: TlsConnect | undefined;
  /** The `servername` every request to this endpoint carries (connector.ts); undefined without TLS. */
  readonly servername: string | undefined;
  readonly pool: Pool;
  readonly health: TargetHealth;
  /** Requests currently dispatched to this endpoint. */
  inFlight = 0;
  #latency = 0;
  #latencyAt = 0;

  constructor(opts: { target: string; host: string; port: number; weight: number; config: UpstreamConfig; connect: TlsConnect | undefined; policy: HealthPolicy }) {
    const { config } = opts;
    const hostPart = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
    this.address = this.id = `${hostPart}:${opts.port}`;
    this.target = opts.target;
    this.host = opts.host;
    this.port = opts.port;
    this.weight = opts.weight;
    this.connect = opts.connect;
    this.origin = `${config.tls ? 'https' : 'http'}://${hostPart}:${opts.port}`;
    this.health = new TargetHealth(opts.policy);
    const pool = protocolPoolOptions(config);
    const connector = endpointConnector({ host: opts.host, tls: opts.connect, connectTimeoutMs: config.timeouts.connect, allowH2: pool.allowH2 === true, useH2c: protocolConnectOptions(config).useH2c === true });
    this.servername = connector.servername;
    this.pool = new Pool(this.origin, {
      connections: config.connections > 0 ? config.connections : null,
      ...pool,
      keepAliveTimeout: config.timeouts.idle,
      keepAliveMaxTimeout: config.timeouts.idle,
      // timeouts.read is the exchange's own millisecond timer; undici's (ticking every ~0.5 s, and
      // able to fire that much early) is only a backstop a second later.
      headersTimeout: config.timeouts.read > 0 ? config.timeouts.read + 1000 : 0,
      bodyTimeout: config.timeouts.read > 0 ? config.timeouts.read + 1000 : 0,
      connect: connector.connect,
    });
  }

  /** Decayed peak-EWMA latency in ms. */
  latencyMs(now: number): number {
    if (this.#latency === 0) return 0;
    return this.#latency * Math.exp(-(now - this.#latencyAt) / DECAY_MS);
  }

  /** Records one response-head latency: a slower sample replaces the average at once (peak). */
  observeLatency(ms: number, now: number): void {
    const current = this.latencyMs(now);
    if (ms >= current) this.#latency = ms;
    else {
      const w = Math.exp(-Math.max(now - this.#latencyAt, 1) / DECAY_MS);
      this.#latency = current * w + ms * (1 - w);
    }
    this.#latencyAt = now;
  }

  /** Closes the pool once its queued and running requests are done. */
  close(): Promise<void> {
    return this.pool.close().catch(() => undefined);
  }
}
