/**
 * Active health checks of one upstream: every `health_check.interval` each endpoint is probed,
 * either with an HTTP GET of `path` (over the upstream's TLS settings, on a fresh connection; the
 * status must be in `expected_status`, default any 2xx or 3xx) or with a plain TCP connect. A probe
 * that does not finish within `timeout` fails. Runs in the process that owns the generation, from
 * its construction until `stop()` (the generation's disposal); the first round starts at once, the
 * next one `interval` after the previous round settled. Results go to `onResult`.
 */
import net from 'node:net';
import { Client } from 'undici';
import type { UpstreamConfig } from '../config/schema.ts';
import type { Endpoint } from './endpoint.ts';

export type HealthCheckConfig = NonNullable<UpstreamConfig['health_check']>;

export class HealthChecker {
  readonly #config: HealthCheckConfig;
  readonly #endpoints: () => readonly Endpoint[];
  readonly #onResult: (ep: Endpoint, ok: boolean, error: string) => void;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Probes of the round in progress, aborted by stop(). */
  readonly #running = new Set<AbortController>();

  constructor(config: HealthCheckConfig, endpoints: () => readonly Endpoint[], onResult: (ep: Endpoint, ok: boolean, error: string) => void) {
    this.#config = config;
    this.#endpoints = endpoints;
    this.#onResult = onResult;
    this.#schedule(0);
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#round(), ms);
    this.#timer.unref();
  }

  async #round(): Promise<void> {
    await Promise.all(
      this.#endpoints().map(async (ep) => {
        const error = await this.#probe(ep);
        if (!this.#stopped) this.#onResult(ep, error === '', error);
      }),
    );
    this.#schedule(this.#config.interval);
  }

  /** One probe; resolves with '' when healthy, else a short reason. */
  async #probe(ep: Endpoint): Promise<string> {
    const ac = new AbortController();
    this.#running.add(ac);
    const timer = setTimeout(() => ac.abort(new Error(`timed out after ${this.#config.timeout}ms`)), this.#config.timeout);
    try {
      return this.#config.type === 'tcp' ? await tcpProbe(ep, ac.signal) : await this.#httpProbe(ep, ac.signal);
    } catch (err) {
      return (ac.signal.aborted ? (ac.signal.reason as Error)?.message : undefined) ?? (err as Error).message ?? String(err);
    } finally {
      clearTimeout(timer);
      this.#running.delete(ac);
    }
  }

  async #httpProbe(ep: Endpoint, signal: AbortSignal): Promise<string> {
    const client = new Client(ep.origin, { connect: { timeout: this.#config.timeout, ...ep.connect }, pipelining: 0 });
    try {
      const res = await client.request({
        path: this.#config.path,
        method: 'GET',
        headers: { host: this.#config.host ?? ep.target, 'user-agent': 'scriptgate-health-check', connection: 'close' },
        signal,
      });
      await res.body.dump();
      const want = this.#config.expected_status;
      const ok = want ? want.includes(res.statusCode) : res.statusCode >= 200 && res.statusCode < 400;
      return ok ? '' : `status ${res.statusCode}`;
    } finally {
      void client.destroy().catch(() => undefined);
    }
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    for (const ac of this.#running) ac.abort(new Error('health checks stopped'));
  }
}

function tcpProbe(ep: Endpoint, signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: ep.host, port: ep.port });
    const onAbort = () => {
      socket.destroy();
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve('');
    });
    socket.once('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      reject(err);
    });
  });
}
