/**
 * DNS names as targets: a configured `name:port` is looked up (getaddrinfo, so /etc/hosts and
 * `localhost` work) when the upstream is built and again every `dns.interval`. The upstream keeps
 * one endpoint (and pool) per resolved address; addresses that remain keep their endpoint and
 * pooled connections, new ones get a new endpoint, vanished ones are closed once idle. A failed
 * lookup keeps the last known addresses.
 */
import { lookup as dnsLookup } from 'node:dns/promises';

/** Resolves a host name to its addresses (deduplicated, sorted). */
export type Resolver = (host: string, family: 0 | 4 | 6) => Promise<string[]>;

export const systemResolver: Resolver = async function systemResolver(host, family) {
  const found = await dnsLookup(host, { all: true, family, verbatim: true });
  return [...new Set(found.map((a) => a.address))].sort();
};

/** Re-resolution loop for one upstream's named targets; `stop()` ends it. */
export class DnsRefresher {
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  /** Calls `refresh` every `intervalMs` (after the previous one settled). */
  constructor(intervalMs: number, refresh: () => Promise<void>) {
    const loop = () => {
      this.#timer = setTimeout(() => {
        void refresh().finally(() => {
          if (!this.#stopped) loop();
        });
      }, intervalMs);
      this.#timer.unref();
    };
    loop();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }
}
