/**
 * The proxy of one process: its listeners and the current generation. `start()` binds the
 * listeners; `swap()` makes a new generation current for new requests while running ones finish on
 * theirs; `shutdown()` drains (graceful) or stops at once. Used directly for `workers: 1`
 * and inside each cluster worker otherwise.
 *
 * @example
 *   const server = await ProxyServer.start(loaded, logger);
 *   console.log(server.ports); // bound ports, in config order
 */
import type { Server } from 'node:net';
import type { Logger } from 'pino';
import type { LoadedConfig } from '../config/load.ts';
import { Listener, listenerLimits } from '../core/listener.ts';
import { StreamListener } from '../core/stream-listener.ts';
import { buildGeneration, type Generation } from './generation.ts';
import { listenerKey } from './upgrade.ts';

export class ProxyServer {
  #current: Generation;
  #draining = false;
  readonly listeners: Listener[];
  readonly ports: number[] = [];
  /** TCP stream listeners (config.streams order) and their bound ports. */
  readonly streams: StreamListener[];
  readonly streamPorts: number[] = [];
  readonly logger: Logger;
  /** The config the listeners and streams were bound with (a reload cannot rebind them). */
  readonly bound: Generation['config'];

  private constructor(gen: Generation, logger: Logger, bound: Generation['config']) {
    this.#current = gen;
    this.bound = bound;
    this.logger = logger;
    const config = bound;
    this.listeners = config.listen.map(
      (l, i) =>
        new Listener({
          config: l,
          limits: config.limits,
          logger,
          current: () => this.#current,
          accessLog: () => this.#current.config.log.access_log,
          metrics: config.admin !== undefined,
          draining: () => this.#draining,
          certificates: () => this.#current.certificates[i],
        }),
    );
    this.streams = config.streams.map(
      (s, index) => new StreamListener({ index, config: s, logger, current: () => this.#current, accessLog: () => this.#current.config.log.access_log }),
    );
  }

  #all(): Array<Listener | StreamListener> {
    return [...this.listeners, ...this.streams];
  }

  /**
   * Builds the first generation and binds every listener, or, during a zero-downtime upgrade,
   * takes over the `inherited` listening socket of the same address (upgrade.ts `listenerKey`);
   * inherited sockets the config no longer has are closed. `bound` (default the config itself)
   * is the config whose listeners to bind: a cluster worker started after a reload binds what its
   * siblings bound at start, since a reload does not rebind. Throws ConfigError or a listen error.
   */
  static async start(loaded: LoadedConfig, logger: Logger, inherited: ReadonlyMap<string, Server> = new Map(), bound?: Generation['config']): Promise<ProxyServer> {
    const gen = await buildGeneration(loaded, logger);
    const server = new ProxyServer(gen, logger, bound ?? gen.config);
    const unused = new Map(inherited);
    const take = (key: string): Server | undefined => {
      const handle = unused.get(key);
      unused.delete(key);
      return handle;
    };
    try {
      for (const [i, l] of server.listeners.entries()) server.ports.push(await l.listen(take(listenerKey('http', server.bound.listen[i]!.address))));
      for (const [i, s] of server.streams.entries()) server.streamPorts.push(await s.listen(take(listenerKey('stream', server.bound.streams[i]!.address))));
    } catch (err) {
      await server.shutdown(false);
      throw err;
    } finally {
      for (const handle of unused.values()) handle.close();
    }
    logger.info({ generation: gen.id, listen: server.bound.listen.map((l, i) => `${l.address.replace(/:\d+$/, '')}:${server.ports[i]}`) }, 'scriptgate listening');
    return server;
  }

  get generation(): Generation {
    return this.#current;
  }

  /** Makes `gen` current; the old one is disposed when its last request ends. */
  swap(gen: Generation): void {
    const old = this.#current;
    this.#current = gen;
    // Limits follow reloads: each bound listener takes those of the new config's listener at its address.
    for (const [i, l] of this.listeners.entries()) {
      const key = listenerKey('http', this.bound.listen[i]!.address);
      const own = gen.config.listen.find((c) => listenerKey('http', c.address) === key) ?? this.bound.listen[i]!;
      l.applyLimits(listenerLimits(own, gen.config.limits));
    }
    old.retire();
  }

  /**
   * Stops accepting connections. Graceful: running requests finish (up to `timeoutMs`, default the
   * config's `shutdown_timeout`, after which what is still open is cut, with a warning), keep-alive
   * connections close after their current response. Not graceful: every connection is cut now.
   */
  async shutdown(graceful: boolean, timeoutMs = this.#current.config.shutdown_timeout): Promise<void> {
    this.#draining = true;
    const closing = Promise.all(this.#all().map((l) => (l.listening ? l.close() : Promise.resolve())));
    if (!graceful) {
      for (const l of this.#all()) l.closeAllConnections();
    } else {
      const timer = setTimeout(() => {
        this.logger.warn({ shutdownTimeoutMs: timeoutMs, requests: this.#current.active }, 'shutdown_timeout passed; cutting the connections still open');
        for (const l of this.#all()) l.closeAllConnections();
      }, timeoutMs);
      timer.unref();
      await closing;
      clearTimeout(timer);
    }
    await closing;
    this.#current.retire();
  }
}
