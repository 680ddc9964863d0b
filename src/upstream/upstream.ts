/**
 * One configured upstream: its endpoints (one per IP target, one per resolved address of a named
 * target), each with a keep-alive undici Pool, the balancing algorithm, health (active checks and
 * passive ejection) and DNS re-resolution. Built with its generation (`ready` settles once named
 * targets have been looked up); `close()` runs when the generation is disposed: it stops health
 * checks and DNS refreshes and lets in-flight requests finish before the pools close.
 *
 * @example
 *   const up = new Upstream('api', config.upstreams.api, logger);
 *   await up.ready;
 *   const target = up.pick(undefined, up.hashKey({ headers, clientIp, path }));
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { UpstreamConfig } from '../config/schema.ts';
import { parseHostPort } from '../config/units.ts';
import { ALGORITHMS, type Balancer } from './balancer.ts';
import { DnsRefresher, systemResolver, type Resolver } from './dns.ts';
import { Endpoint } from './endpoint.ts';
import { extractHashKey, parseHashKey, type HashKeySpec, type KeySource } from './hash-key.ts';
import { HealthChecker } from './health-check.ts';
import type { HealthPolicy } from './health.ts';
import { connectOptionsFor, loadTls, type TlsConnect } from './tls-options.ts';
import { liveUpstreams } from './live.ts';

/** What the proxy core dispatches to (an endpoint). */
export type Target = Endpoint;

/** One configured `targets` entry and the endpoints it currently stands for. */
interface TargetGroup {
  spec: string;
  host: string;
  port: number;
  weight: number;
  named: boolean;
  endpoints: Endpoint[];
}

/** Per-target health as `/status` shows it. */
export interface TargetStatus {
  address: string;
  target: string;
  weight: number;
  inFlight: number;
  healthy: boolean;
  active: 'up' | 'down' | 'unchecked';
  lastProbeError?: string;
  passiveFails: number;
  ejectedForMs?: number;
  latencyMs?: number;
}

export interface UpstreamOptions {
  /** DNS lookup; tests inject their own. */
  resolver?: Resolver;
  /** The same upstream in the generation being replaced: its targets' health carries over. */
  previous?: Upstream;
}

/**
 * Events: `health` (endpoint, up: boolean) when a target goes down or comes back (active or
 * passive); `resolved` (group spec, addresses) after each DNS refresh that changed something.
 */
export class Upstream extends EventEmitter {
  readonly name: string;
  readonly config: UpstreamConfig;
  /** Settles when every named target has been looked up once (never rejects). */
  readonly ready: Promise<void>;
  readonly #logger: Logger | undefined;
  readonly #tls: TlsConnect | undefined;
  readonly #policy: HealthPolicy;
  readonly #hashKey: HashKeySpec;
  readonly #groups: TargetGroup[];
  readonly #resolver: Resolver;
  #endpoints: Endpoint[] = [];
  #balancer!: Balancer<Endpoint>;
  #checker: HealthChecker | undefined;
  #dns: DnsRefresher | undefined;
  #closed = false;
  readonly #skipDown = (t: Endpoint): boolean => !t.health.isUp(this.#now);
  #now = 0;

  constructor(name: string, config: UpstreamConfig, logger?: Logger, options: UpstreamOptions = {}) {
    super();
    this.name = name;
    this.config = config;
    this.#logger = logger?.child({ upstream: name });
    this.#tls = loadTls(config.tls);
    this.#resolver = options.resolver ?? systemResolver;
    this.#hashKey = parseHashKey(config.hash_key);
    const hc = config.health_check;
    this.#policy = {
      healthyThreshold: hc?.healthy_threshold ?? 1,
      unhealthyThreshold: hc?.unhealthy_threshold ?? 1,
      maxFails: config.passive.max_fails,
      cooldownMs: config.passive.cooldown,
    };
    this.#groups = config.targets.map((t) => {
      const hp = parseHostPort(t.address)!;
      const named = net.isIP(hp.host) === 0;
      const group: TargetGroup = { spec: t.address, host: hp.host, port: hp.port, weight: t.weight, named, endpoints: [] };
      if (!named) group.endpoints.push(this.#endpoint(group, hp.host));
      return group;
    });
    this.#rebuild();
    if (options.previous) this.#adoptHealth(options.previous);
    const named = this.#groups.filter((g) => g.named);
    this.ready = named.length ? Promise.all(named.map((g) => this.#resolve(g))).then(() => undefined) : Promise.resolve();
    if (named.length) this.#dns = new DnsRefresher(config.dns.interval, () => Promise.all(named.map((g) => this.#resolve(g))).then(() => undefined));
    if (hc) this.#checker = new HealthChecker(hc, () => this.#endpoints, (ep, ok, error) => this.#probed(ep, ok, error));
    liveUpstreams.add(this);
  }

  /** Health of targets `prev` also had (same address), taken over after a reload. */
  #adoptHealth(prev: Upstream): void {
    const before = new Map(prev.#endpoints.map((e) => [e.address, e]));
    for (const e of this.#endpoints) {
      const old = before.get(e.address);
      if (old) e.health.adopt(old.health);
    }
  }

  #endpoint(group: TargetGroup, host: string): Endpoint {
    return new Endpoint({
      target: group.spec,
      host,
      port: group.port,
      weight: group.weight,
      config: this.config,
      connect: connectOptionsFor(this.#tls, group.host),
      policy: this.#policy,
    });
  }

  /** Current endpoints, in config order. */
  get targets(): readonly Target[] {
    return this.#endpoints;
  }

  #rebuild(): void {
    this.#endpoints = this.#groups.flatMap((g) => g.endpoints);
    this.#balancer = ALGORITHMS[this.config.balance](this.#endpoints);
  }

  async #resolve(group: TargetGroup): Promise<void> {
    let addresses: string[];
    try {
      addresses = await this.#resolver(group.host, this.config.dns.family);
    } catch (err) {
      this.#logger?.warn({ target: group.spec, err: (err as Error).message }, 'DNS lookup of upstream target failed; keeping its last addresses');
      return;
    }
    if (this.#closed || addresses.length === 0) return;
    const have = new Map(group.endpoints.map((e) => [e.host, e]));
    const next = addresses.map((a) => have.get(a) ?? this.#endpoint(group, a));
    const gone = group.endpoints.filter((e) => !addresses.includes(e.host));
    if (gone.length === 0 && next.length === group.endpoints.length) return;
    group.endpoints = next;
    this.#rebuild();
    for (const e of gone) void e.close();
    this.#logger?.info({ target: group.spec, addresses }, 'upstream target resolved');
    this.emit('resolved', group.spec, addresses);
  }

  /** Hash key of a request for consistent_hash (undefined for other algorithms or when absent). */
  hashKey(src: KeySource): string | undefined {
    return this.config.balance === 'consistent_hash' ? extractHashKey(this.#hashKey, src) : undefined;
  }

  /**
   * Picks the target for a try: healthy ones not in `tried`; when none is healthy and
   * `all_unhealthy` is fail_open, any not tried. Returns undefined when nothing is left.
   */
  pick(tried?: ReadonlySet<Target>, key?: string): Target | undefined {
    this.#now = performance.now();
    const skip = tried?.size ? (t: Endpoint) => tried.has(t) || this.#skipDown(t) : this.#skipDown;
    const t = this.#balancer.pick({ skip, key });
    if (t || this.config.all_unhealthy === 'fail_closed') return t;
    // Fail open only when every target is down, not when the healthy ones were all tried.
    if (this.#endpoints.some((e) => !tried?.has(e) && e.health.isUp(this.#now))) return undefined;
    return this.#balancer.pick({ skip: tried?.size ? (x) => tried.has(x) : undefined, key });
  }

  /** True when there are targets and none is healthy now (for the 503 message). */
  allDown(): boolean {
    const now = performance.now();
    return this.#endpoints.length > 0 && !this.#endpoints.some((e) => e.health.isUp(now));
  }

  /** A try got its response head after `ms`. */
  succeeded(t: Target, ms: number): void {
    t.observeLatency(ms, performance.now());
    t.health.passiveSuccess();
  }

  /** A try failed because of the target (connect, TLS, timeout, broken connection). */
  failed(t: Target, code: string): void {
    const now = performance.now();
    t.observeLatency(this.config.timeouts.connect, now);
    if (t.health.passiveFailure(now)) {
      this.#logger?.warn({ target: t.address, code, cooldownMs: this.config.passive.cooldown }, 'upstream target ejected after consecutive failures');
      this.emit('health', t, false);
    }
  }

  #probed(ep: Endpoint, ok: boolean, error: string): void {
    if (!ep.health.probe(ok, error)) return;
    if (ok) this.#logger?.info({ target: ep.address }, 'upstream target healthy again');
    else this.#logger?.warn({ target: ep.address, err: error }, 'upstream target failed its health checks; no traffic until it passes');
    this.emit('health', ep, ok);
  }

  /** Targets and their health, for the admin `/status`. */
  status(): { name: string; balance: string; targets: TargetStatus[] } {
    const now = performance.now();
    return {
      name: this.name,
      balance: this.config.balance,
      targets: this.#endpoints.map((e) => {
        const h = e.health;
        const lat = e.latencyMs(now);
        return {
          address: e.address,
          target: e.target,
          weight: e.weight,
          inFlight: e.inFlight,
          healthy: h.isUp(now),
          active: this.#checker ? (h.activeUp ? 'up' : 'down') : 'unchecked',
          ...(h.lastProbeError ? { lastProbeError: h.lastProbeError } : {}),
          passiveFails: h.passiveFails,
          ...(h.ejectedUntil > now ? { ejectedForMs: Math.round(h.ejectedUntil - now) } : {}),
          ...(lat > 0 ? { latencyMs: Math.round(lat * 1000) / 1000 } : {}),
        };
      }),
    };
  }

  /** Stops health checks and DNS refreshes; closes every pool once its requests are done. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#checker?.stop();
    this.#dns?.stop();
    liveUpstreams.delete(this);
    await Promise.all(this.#groups.flatMap((g) => g.endpoints).map((e) => e.close()));
  }
}
