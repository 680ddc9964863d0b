/**
 * An HTTP/1.1 listener: a node:http server with the config's limits, whose requests become
 * `Exchange`s on the generation current at arrival. Malformed requests never reach a route: the
 * parser's errors are answered here with 400/408/414/431 and the connection is closed.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { LimitsConfig, ListenerConfig } from '../config/schema.ts';
import { parseHostPort } from '../config/units.ts';
import type { Generation } from '../control/generation.ts';
import { Exchange, type ListenerContext } from './exchange.ts';

export interface ListenerOptions {
  config: ListenerConfig;
  limits: LimitsConfig;
  logger: Logger;
  /** The generation new requests start on. */
  current: () => Generation;
  accessLog: () => boolean;
  metrics: boolean;
  draining: () => boolean;
}

const REASONS: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 413: 'Payload Too Large', 414: 'URI Too Long', 431: 'Request Header Fields Too Large' };

/** Effective limits of a listener: its own overrides over the top-level ones. */
export function listenerLimits(config: ListenerConfig, limits: LimitsConfig): LimitsConfig {
  const own = config.limits ?? {};
  return {
    client_header_timeout: own.client_header_timeout ?? limits.client_header_timeout,
    max_header_size: own.max_header_size ?? limits.max_header_size,
    max_uri_size: own.max_uri_size ?? limits.max_uri_size,
    max_body_size: own.max_body_size ?? limits.max_body_size,
    keepalive_timeout: own.keepalive_timeout ?? limits.keepalive_timeout,
  };
}

/** Status for a parser error: 431 for an oversized head (414 when the request line alone is too long), 408 for a slow head, else 400. */
export function statusForClientError(err: NodeJS.ErrnoException & { rawPacket?: Buffer }, limits: LimitsConfig): number {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW': {
      const raw = err.rawPacket;
      const eol = raw ? raw.indexOf(10) : -1;
      return raw && (eol < 0 || eol > limits.max_uri_size) ? 414 : 431;
    }
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'ERR_HTTP_HEADERS_TIMEOUT':
      return 408;
    default:
      return 400;
  }
}

export class Listener {
  readonly server: http.Server;
  readonly #opts: ListenerOptions;
  readonly #ctx: ListenerContext;

  constructor(opts: ListenerOptions) {
    this.#opts = opts;
    const limits = listenerLimits(opts.config, opts.limits);
    const lc: ListenerContext = {
      scheme: opts.config.tls ? 'https' : 'http',
      limits,
      logger: opts.logger,
      get accessLog() {
        return opts.accessLog();
      },
      metrics: opts.metrics,
      draining: opts.draining,
    };
    this.#ctx = lc;
    this.server = http.createServer({
      maxHeaderSize: limits.max_header_size,
      headersTimeout: limits.client_header_timeout,
      requestTimeout: 0,
      keepAliveTimeout: limits.keepalive_timeout,
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.client_header_timeout / 4))),
      requireHostHeader: true,
      noDelay: true,
    });
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => new Exchange(opts.current(), lc, req, res).start());
    this.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => new Exchange(opts.current(), lc, req, res, true).start());
    this.server.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Socket) => this.#onClientError(err, socket));
  }

  #onClientError(err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Socket): void {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = statusForClientError(err, this.#ctx.limits);
    this.#opts.logger.info({ status, code: err.code, client: socket.remoteAddress, err: err.message }, 'malformed request refused');
    const body = `${status} ${REASONS[status]}\n`;
    socket.end(`HTTP/1.1 ${status} ${REASONS[status]}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  }

  /**
   * Starts listening; resolves with the bound port (the config may say port 0). With `inherited`
   * (a listening server handed over by the process being replaced) it accepts on that socket
   * instead of binding a new one.
   */
  listen(inherited?: import('node:net').Server): Promise<number> {
    const { host, port } = parseHostPort(this.#opts.config.address)!;
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      const target = inherited ?? { host, port, backlog: 4096 };
      this.server.listen(target, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as { port: number }).port);
      });
    });
  }

  /**
   * Stops accepting new connections; resolves when every connection has ended. Connections are not
   * cut: a busy one closes after its current response (the caller marks responses
   * `Connection: close` while draining), and a keep-alive connection whose client sends another
   * request gets it answered the same way. Connections still idle after `idleGraceMs` are closed.
   * (node's http `server.close()` would close idle connections at once, racing a client that is
   * just sending its next request; hence net.Server's close.)
   */
  close(idleGraceMs = 1000): Promise<void> {
    return new Promise((resolve) => {
      net.Server.prototype.close.call(this.server, () => resolve());
      const timer = setTimeout(() => this.server.closeIdleConnections(), idleGraceMs);
      timer.unref();
    });
  }
}
