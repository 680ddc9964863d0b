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
import { Listener } from '../core/listener.ts';
import { StreamListener } from '../core/stream-listener.ts';
import { buildGeneration, type Generation } from './generation.ts';

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

  private constructor(gen: Generation, logger: Logger) {
    this.#current = gen;
    this.bound = gen.config;
    this.logger = logger;
    const config = gen.config;
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
   * Builds the first generation and binds every listener (or takes over `inherited` listening
   * sockets, in config order, during a zero-downtime upgrade). Throws ConfigError or a listen error.
   */
  static async start(loaded: LoadedConfig, logger: Logger, inherited: Array<Server | undefined> = []): Promise<ProxyServer> {
    const gen = await buildGeneration(loaded, logger);
    const server = new ProxyServer(gen, logger);
    try {
      for (const [i, l] of server.listeners.entries()) server.ports.push(await l.listen(inherited[i]));
      // Stream listeners bind afresh (a zero-downtime upgrade does not hand them over yet).
      // Inherited sockets come in config order: the HTTP listeners, then the streams.
      for (const [i, s] of server.streams.entries()) server.streamPorts.push(await s.listen(inherited[server.listeners.length + i]));
    } catch (err) {
      await server.shutdown(false);
      throw err;
    }
    logger.info({ generation: gen.id, listen: gen.config.listen.map((l, i) => `${l.address.replace(/:\d+$/, '')}:${server.ports[i]}`) }, 'scriptgate listening');
    return server;
  }

  get generation(): Generation {
    return this.#current;
  }

  /** Makes `gen` current; the old one is disposed when its last request ends. */
  swap(gen: Generation): void {
    const old = this.#current;
    this.#current = gen;
    old.retire();
  }

  /**
   * Stops accepting connections. Graceful: running requests finish (up to `timeoutMs`), keep-alive
   * connections close after their current response. Not graceful: every connection is cut now.
   */
  async shutdown(graceful: boolean, timeoutMs = 30_000): Promise<void> {
    this.#draining = true;
    const closing = Promise.all(this.#all().map((l) => (l.listening ? l.close() : Promise.resolve())));
    if (!graceful) {
      for (const l of this.#all()) l.closeAllConnections();
    } else {
      const timer = setTimeout(() => {
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
