/**
 * Route matching. Built once per generation from `config.routes`; `match()` runs once per request.
 * A route matches on host (exact, `*.suffix`, or any when omitted), path prefix and method (a route
 * that allows GET also allows HEAD, RFC 9110 §9.3.2, as nginx's `limit_except GET`). The path is the
 * strict reading of request-target.ts's `routingPath`, and prefixes are compiled the same way. Among
 * matches the most specific host wins (exact > longest `*.suffix` > any, like nginx's server_name),
 * then the longest path prefix, then the first in the config. No match → undefined (404).
 */
import type { RouteConfig } from '../config/schema.ts';
import { routingPath } from './request-target.ts';

export interface CompiledRoute {
  index: number;
  /** Route name, or `#index` when the config names none (used in logs and metrics). */
  name: string;
  config: RouteConfig;
  prefix: string;
  methods: ReadonlySet<string> | undefined;
}

interface HostBucket {
  /** Routes of this host pattern, longest prefix first. */
  routes: CompiledRoute[];
}

/** Lower-cases a Host header value and strips its port (IPv6 literals keep their brackets). */
export function hostName(host: string): string {
  let h = host;
  if (h.charCodeAt(0) === 91 /* [ */) {
    const end = h.indexOf(']');
    return (end > 0 ? h.slice(0, end + 1) : h).toLowerCase();
  }
  const colon = h.indexOf(':');
  if (colon >= 0) h = h.slice(0, colon);
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h.toLowerCase();
}

export class Router {
  readonly routes: CompiledRoute[];
  readonly #exact = new Map<string, HostBucket>();
  /** `*.suffix` patterns, longest suffix first; the stored suffix keeps its leading dot. */
  readonly #wildcard: Array<{ suffix: string; bucket: HostBucket }> = [];
  readonly #any: HostBucket = { routes: [] };

  constructor(routes: RouteConfig[]) {
    this.routes = routes.map((config, index) => ({
      index,
      name: config.name ?? `#${index}`,
      config,
      prefix: routingPath(config.match.path_prefix) ?? config.match.path_prefix,
      methods: config.match.methods ? methodSet(config.match.methods) : undefined,
    }));
    for (const route of this.routes) {
      const hosts = route.config.match.host === undefined ? ['*'] : ([] as string[]).concat(route.config.match.host);
      for (const pattern of hosts) this.#bucketFor(hostName(pattern === '*' ? '*' : pattern)).routes.push(route);
    }
    const byPrefix = (a: CompiledRoute, b: CompiledRoute) => b.prefix.length - a.prefix.length || a.index - b.index;
    for (const bucket of [...this.#exact.values(), ...this.#wildcard.map((w) => w.bucket), this.#any]) bucket.routes.sort(byPrefix);
    this.#wildcard.sort((a, b) => b.suffix.length - a.suffix.length);
  }

  #bucketFor(pattern: string): HostBucket {
    if (pattern === '*') return this.#any;
    if (pattern.startsWith('*.')) {
      const suffix = pattern.slice(1);
      let w = this.#wildcard.find((x) => x.suffix === suffix);
      if (!w) this.#wildcard.push((w = { suffix, bucket: { routes: [] } }));
      return w.bucket;
    }
    let b = this.#exact.get(pattern);
    if (!b) this.#exact.set(pattern, (b = { routes: [] }));
    return b;
  }

  /** Finds the route for a request; `host` is already lower-case without port. */
  match(host: string, path: string, method: string): CompiledRoute | undefined {
    const exact = this.#exact.get(host);
    if (exact) {
      const r = pick(exact, path, method);
      if (r) return r;
    }
    for (const w of this.#wildcard) {
      if (host.length > w.suffix.length && host.endsWith(w.suffix)) {
        const r = pick(w.bucket, path, method);
        if (r) return r;
      }
    }
    return pick(this.#any, path, method);
  }
}

/** A route's methods; GET brings HEAD along. */
function methodSet(methods: readonly string[]): ReadonlySet<string> {
  const set = new Set(methods);
  if (set.has('GET')) set.add('HEAD');
  return set;
}

function pick(bucket: HostBucket, path: string, method: string): CompiledRoute | undefined {
  for (const r of bucket.routes) {
    if (path.startsWith(r.prefix) && (r.methods === undefined || r.methods.has(method))) return r;
  }
  return undefined;
}
