/**
 * A listener: one configured address and the servers behind it. HTTP/1.1 requests go through a
 * node:http server with the config's limits; with `http2: true` HTTP/2 streams go through a
 * node:http2 server (see http2-downstream.ts); with `tls` a node:tls server terminates TLS, picks
 * the certificate by SNI from the current generation and dispatches by ALPN. Every request becomes
 * an `Exchange` on the generation current at arrival. Malformed HTTP/1.1 requests never reach a
 * route: the parser's errors are answered here with 400/408/414/431/501/505 and the connection is
 * closed; so are request lines of HTTP versions other than 1.x (505) and Expect values other than
 * 100-continue (417).
 *
 * What binds the port (`server`):
 *   plain, HTTP/1.1 only   → the http server itself (the hot path, unchanged)
 *   plain, `http2: true`   → a net server that sniffs the h2c preface, then hands the socket over
 *   `tls`                  → a tls server; ALPN `h2` → HTTP/2, anything else → HTTP/1.1
 * Upgrade requests go from `http1`'s `upgrade` event to websocket.ts when they ask for WebSocket,
 * which tunnels them; an Upgrade to anything else (h2c, …) is served as a plain request
 * (plain-upgrade.ts). On the HTTP/2 side, an extended CONNECT for WebSocket (RFC 8441) goes to
 * h2-websocket.ts. `#dispatch()` is where a connection is given to the protocol that serves it.
 */
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import net, { type Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { LimitsConfig, ListenerConfig } from '../config/schema.ts';
import { parseHostPort } from '../config/units.ts';
import type { Generation } from '../control/generation.ts';
import { ALLOW, Exchange, type ListenerContext } from './exchange.ts';
import { sniffH2cPreface } from './h2c-sniff.ts';
import { Http2Downstream } from './http2-downstream.ts';
import { proxyHttp2WebSocket } from './h2-websocket.ts';
import { serveAsPlainRequest } from './plain-upgrade.ts';
import { inTurn } from './http1-pipeline.ts';
import { clientHelloOf, sniffClientHello } from './tls-client-hello.ts';
import { requestIdOf } from './request-prelude.ts';
import { sentUnverifiedClientCertificate, type CertificateTable } from './tls-certificates.ts';
import { recordRequest, trackConnection } from '../observability/metrics.ts';
import { writeAccessLine } from '../observability/access-log.ts';
import type { ErrorCode } from '../errors.ts';
import { isWebSocketUpgrade, proxyUpgrade, type TunnelSet } from './websocket.ts';

export interface ListenerOptions {
  config: ListenerConfig;
  limits: LimitsConfig;
  logger: Logger;
  /** The generation new requests start on. */
  current: () => Generation;
  accessLog: () => boolean;
  metrics: boolean;
  draining: () => boolean;
  /** TLS listeners: this listener's certificates in the current generation, read on each new connection. */
  certificates?: () => CertificateTable | undefined;
}

/** The body of the 400 a plain HTTP request on a TLS port gets (nginx's wording). */
const PLAIN_ON_TLS = 'The plain HTTP request was sent to HTTPS port\n';

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  413: 'Payload Too Large',
  414: 'URI Too Long',
  417: 'Expectation Failed',
  431: 'Request Header Fields Too Large',
  501: 'Not Implemented',
  505: 'HTTP Version Not Supported',
};
/** A request line `METHOD target HTTP/x.y` whose method is an upper-case token (nginx's method syntax). */
const UNKNOWN_METHOD_LINE = /^[A-Z_-]{1,32} /;
/** A request line whose version is well-formed (`HTTP/` digit `.` digit) but not one the parser takes. */
const OTHER_VERSION_LINE = /^[!-~]+ [!-~]+ HTTP\/\d\.\d\r?$/;

/** Effective limits of a listener: its own overrides over the top-level ones. */
export function listenerLimits(config: ListenerConfig, limits: LimitsConfig): LimitsConfig {
  const own = config.limits ?? {};
  return {
    client_header_timeout: own.client_header_timeout ?? limits.client_header_timeout,
    client_body_timeout: own.client_body_timeout ?? limits.client_body_timeout,
    send_timeout: own.send_timeout ?? limits.send_timeout,
    max_header_size: own.max_header_size ?? limits.max_header_size,
    max_uri_size: own.max_uri_size ?? limits.max_uri_size,
    max_body_size: own.max_body_size ?? limits.max_body_size,
    keepalive_timeout: own.keepalive_timeout ?? limits.keepalive_timeout,
    http2_max_concurrent_streams: own.http2_max_concurrent_streams ?? limits.http2_max_concurrent_streams,
    websocket_idle_timeout: own.websocket_idle_timeout ?? limits.websocket_idle_timeout,
    underscores_in_headers: own.underscores_in_headers ?? limits.underscores_in_headers,
  };
}

/**
 * Status for a parser error: 431 for an oversized head (414 when the request line alone is too
 * long), 408 for a slow head, 501 for a well-formed but unknown method (RFC 9110 §9.1; node's
 * parser knows a fixed list), 505 for a well-formed version other than 1.0/1.1, else 400.
 */
export function statusForClientError(err: NodeJS.ErrnoException & { rawPacket?: Buffer; bytesParsed?: number }, limits: LimitsConfig): number {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW': {
      const raw = err.rawPacket;
      const eol = raw ? raw.indexOf(10) : -1;
      return raw && (eol < 0 || eol > limits.max_uri_size) ? 414 : 431;
    }
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'ERR_HTTP_HEADERS_TIMEOUT':
      return 408;
    case 'HPE_INVALID_METHOD':
      return UNKNOWN_METHOD_LINE.test(requestLineAt(err)) ? 501 : 400;
    case 'HPE_INVALID_VERSION':
      return OTHER_VERSION_LINE.test(requestLineAt(err)) ? 505 : 400;
    default:
      return 400;
  }
}

/** The request line the parser failed in: the line around where it stopped in the packet. */
function requestLineAt(err: { rawPacket?: Buffer; bytesParsed?: number }): string {
  const raw = err.rawPacket;
  if (!raw) return '';
  const at = Math.min(err.bytesParsed ?? 0, raw.length);
  const start = raw.lastIndexOf(10, at - 1) + 1;
  const end = raw.indexOf(10, at);
  return raw.subarray(start, end < 0 ? raw.length : end).toString('latin1');
}

/** The last response started on an HTTP/1 connection (set per request; read by the parser-error handler). */
const kLastResponse = Symbol('scriptgate.lastResponse');
type Http1Socket = Socket & { _httpMessage?: ServerResponse | null; [kLastResponse]?: ServerResponse };

/**
 * Runs `fn` once the response still being written on `socket` (to a request pipelined before an
 * Upgrade) has finished, at once when there is none; never when the connection closes first.
 */
function afterPendingResponse(socket: Http1Socket, fn: () => void): void {
  const pending = socket._httpMessage;
  if (!pending || pending.writableFinished) return fn();
  const run = (): void => {
    socket.off('close', cancel);
    // node armed its keep-alive timer when that response finished; the upgrade is a request in progress.
    socket.setTimeout(0);
    fn();
  };
  const cancel = (): void => {
    pending.off('finish', run);
  };
  pending.once('finish', run);
  socket.once('close', cancel);
}

/** The error code of a status the listener answers itself (before any route). */
const REFUSAL_CODE: Record<number, ErrorCode> = {
  400: 'PRX_ERR_BAD_REQUEST',
  405: 'PRX_ERR_METHOD_NOT_ALLOWED',
  408: 'PRX_ERR_CLIENT_TIMEOUT',
  414: 'PRX_ERR_URI_TOO_LONG',
  417: 'PRX_ERR_EXPECTATION_FAILED',
  431: 'PRX_ERR_HEADERS_TOO_LARGE',
  501: 'PRX_ERR_NOT_IMPLEMENTED',
  505: 'PRX_ERR_VERSION_NOT_SUPPORTED',
};

/** A local answer of the listener (505, 417): text body, Date, X-Request-Id; the connection closes. Returns the body's length. */
function refuse(req: IncomingMessage, res: ServerResponse, status: number, reqId: string): number {
  res.shouldKeepAlive = false;
  const body = `${status} ${REASONS[status]}\n`;
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': body.length, 'x-request-id': reqId });
  res.end(req.method === 'HEAD' ? undefined : body);
  return req.method === 'HEAD' ? 0 : body.length;
}

export class Listener {
  /** What binds the port (see the module comment); handed over as is in a zero-downtime upgrade. */
  readonly server: net.Server;
  /** Serves every HTTP/1.1 connection of this listener, plain or TLS. */
  readonly http1: http.Server;
  /** Serves HTTP/2 connections (ALPN h2 or h2c) when the listener has `http2: true`. */
  readonly http2: Http2Downstream | undefined;
  readonly #opts: ListenerOptions;
  readonly #ctx: ListenerContext;
  /** Connections of a dispatching front (TLS or h2c sniffing), so a hard stop can cut them. */
  readonly #sockets = new Set<Socket>();
  /** Open WebSocket/Upgrade tunnels (websocket.ts), so a hard stop can cut them. */
  readonly #tunnels: TunnelSet = new Set();
  #certificates: CertificateTable | undefined;
  /** The TLS server of a TLS listener (fed by `server`, the plain front that reads each ClientHello). */
  #tlsServer: tls.Server | undefined;

  /**
   * On reload: this listener's limits become `next` (its own overrides over the new top-level
   * ones). Everything read per request or per connection follows at once (body size and
   * timeouts, URI and header caps, keep-alive, HTTP/2 SETTINGS of new connections); a connection
   * already open keeps its parser's header-size cap and its HTTP/2 SETTINGS.
   */
  applyLimits(next: LimitsConfig): void {
    Object.assign(this.#ctx.limits, next);
    this.http1.headersTimeout = next.client_header_timeout;
    this.http1.keepAliveTimeout = next.keepalive_timeout;
    (this.http1 as http.Server & { maxHeaderSize: number }).maxHeaderSize = next.max_header_size;
    this.http2?.applyLimits(next);
  }

  constructor(opts: ListenerOptions) {
    this.#opts = opts;
    const config = opts.config;
    const limits = listenerLimits(config, opts.limits);
    const lc: ListenerContext = {
      scheme: config.tls ? 'https' : 'http',
      limits,
      logger: opts.logger,
      get accessLog() {
        return opts.accessLog();
      },
      metrics: opts.metrics,
      draining: opts.draining,
    };
    this.#ctx = lc;
    this.http1 = http.createServer({
      maxHeaderSize: limits.max_header_size,
      headersTimeout: limits.client_header_timeout,
      requestTimeout: 0,
      keepAliveTimeout: limits.keepalive_timeout,
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.client_header_timeout / 4))),
      // A missing Host is refused by readRequestHead (request-prelude.ts), in the proxy's own format.
      requireHostHeader: false,
      noDelay: true,
    });
    // No cap on the number of header lines (node keeps 2000 and silently drops the rest, Content-Length
    // included); max_header_size bounds them, checked on the real size by readRequestHead.
    this.http1.maxHeadersCount = 0;
    // Pipelined requests run one at a time, in order, and none after a response that closes (http1-pipeline.ts).
    this.http1.on('request', (req: IncomingMessage, res: ServerResponse) => {
      (req.socket as Http1Socket)[kLastResponse] = res;
      inTurn(req, res, () => {
        // HTTP/0.9 and `HTTP/2.0` request lines parse, but only HTTP/1.x is spoken here: 505 and close.
        if (req.httpVersionMajor !== 1) return void this.#refuse(req, res, 505);
        new Exchange(opts.current(), lc, req, res).start();
      });
    });
    this.http1.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      (req.socket as Http1Socket)[kLastResponse] = res;
      inTurn(req, res, () => {
        if (req.httpVersionMajor !== 1) return void this.#refuse(req, res, 505);
        new Exchange(opts.current(), lc, req, res, true).start();
      });
    });
    // An Expect other than 100-continue (RFC 9110 §10.1.1): 417, and the connection closes, since
    // the client may be holding its body back until it hears an answer.
    this.http1.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
      (req.socket as Http1Socket)[kLastResponse] = res;
      inTurn(req, res, () => {
        opts.logger.info({ expect: req.headers.expect, client: req.socket.remoteAddress }, 'unsupported Expect refused');
        this.#refuse(req, res, 417);
      });
    });
    // WebSocket upgrades run rewrite/access, then become tunnels (websocket.ts); an Upgrade to
    // anything else is served as the plain request it also is (plain-upgrade.ts), as nginx does.
    // CONNECT (forward proxying) is not offered, as in Pingora by default: 405, not a silent close.
    this.http1.on('connect', (req: IncomingMessage, socket: Socket) => {
      opts.logger.info({ method: 'CONNECT', target: req.url, client: socket.remoteAddress }, 'CONNECT refused: scriptgate is a reverse proxy');
      socket.end(`HTTP/1.1 405 Method Not Allowed\r\nAllow: ${ALLOW}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    });
    this.http1.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      // The response to a request pipelined before this one may still be going out: it goes first.
      afterPendingResponse(socket as Http1Socket, () => {
        if (req.httpVersionMajor !== 1) return void socket.end('HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        if (!isWebSocketUpgrade(req)) return serveAsPlainRequest(this.http1, req, socket, head);
        proxyUpgrade(opts.current(), lc, req, socket, head, this.#tunnels);
      });
    });
    this.http1.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Socket) => this.#onClientError(err, socket));
    // scriptgate_active_connections{protocol}: only when metrics are on (an admin listener exists).
    if (opts.metrics) this.http1.on('connection', (socket: Socket) => trackConnection('http1', socket));

    if (config.http2) {
      const tunnels = this.#tunnels;
      this.http2 = new Http2Downstream(
        limits,
        opts.logger,
        function onHttp2Request(req: Http2ServerRequest, res: Http2ServerResponse, expectContinue: boolean) {
          // The compatibility API offers what the exchange uses of IncomingMessage/ServerResponse.
          new Exchange(opts.current(), lc, req as unknown as IncomingMessage, res as unknown as ServerResponse, expectContinue).start();
        },
        function onHttp2WebSocket(req: Http2ServerRequest, res: Http2ServerResponse) {
          proxyHttp2WebSocket(opts.current(), lc, req, res, tunnels);
        },
      );
    }

    if (this.http2 && opts.metrics) this.http2.server.on('session', (session: import('node:http2').Http2Session) => trackConnection('h2', session));
    if (config.tls) {
      // The TLS server serves the connections a plain front hands it, after reading each
      // ClientHello (tls-client-hello.ts): the certificate is chosen per client, by name and key type.
      const front = this.#tlsFront(limits);
      this.server = net.createServer({ noDelay: true }, (socket) => {
        this.#track(socket);
        sniffClientHello(socket, limits.client_header_timeout, (s) => {
          const table = this.#currentCertificates();
          const hello = clientHelloOf(s);
          // The context the handshake starts in: node's SNI switch can replace one certificate only,
          // so the right one (this name, a key type the client verifies) must be there from the start.
          // (A hello that did not parse starts in the default certificate, as a client without SNI.)
          if (table) (front as tls.Server & { _sharedCreds: tls.SecureContext })._sharedCreds = hello ? table.pick(hello.serverName, hello.keyTypes) : table.default;
          front.emit('connection', s);
        });
      });
    }
    else if (this.http2) {
      const h2 = this.http2;
      this.server = net.createServer({ noDelay: true }, (socket) => {
        this.#track(socket);
        sniffH2cPreface(socket, limits.client_header_timeout, (s, isH2) => {
          if (isH2) return h2.accept(s); // http2 reads what the sniffer put back itself
          this.http1.emit('connection', s);
          s.resume(); // the http parser gets the put-back bytes as 'data'
        });
      });
    } else this.server = this.http1;
    // The http server does not bind the port itself here: start its connection tracking (the
    // header timeout and closeIdleConnections rely on it) as binding would.
    if (this.server !== this.http1) this.http1.emit('listening');
  }

  /** The TLS front: SNI picks the certificate, ALPN the protocol; certificates follow hot reloads. */
  #tlsFront(limits: LimitsConfig): tls.Server {
    const config = this.#opts.config;
    const verify = config.tls!.verify_client;
    const certificates = this.#currentCertificates();
    if (!certificates) throw new Error(`listener ${config.address}: no certificates loaded`);
    const certificatesNow = () => this.#certificates!;
    const front = tls.createServer({
      ...certificates.serverOptions,
      // `this` is the TLS socket: the same choice as the starting context (by key type too), or by name alone when no ClientHello was read.
      SNICallback(this: TLSSocket, servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) {
        cb(null, certificatesNow().pick(servername, clientHelloOf(this)?.keyTypes ?? []));
      },
      ALPNProtocols: this.http2 ? ['h2', 'http/1.1'] : ['http/1.1'],
      requestCert: verify !== 'off',
      rejectUnauthorized: verify === 'on',
      handshakeTimeout: limits.client_header_timeout,
      noDelay: true,
    });
    front.on('secureConnection', (socket: TLSSocket) => {
      if (verify === 'optional' && refuseBadClientCertificate(socket, this.#opts.logger, limits.client_header_timeout)) return;
      this.#dispatch(socket, socket.alpnProtocol === 'h2');
    });
    front.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
      const raw = (socket as TLSSocket & { _parent?: Socket })._parent;
      if (err.code === 'ERR_SSL_HTTP_REQUEST' && raw?.writable) {
        // Plain HTTP on the TLS port: say so in plain HTTP, as nginx does, instead of a silent close.
        raw.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${PLAIN_ON_TLS.length}\r\nConnection: close\r\n\r\n${PLAIN_ON_TLS}`);
        this.#opts.logger.info({ client: raw.remoteAddress }, 'plain HTTP request on a TLS port refused');
        return;
      }
      // A client certificate refused by verify_client: on is worth a line (as `optional`'s refusal); other handshake failures are noise.
      const certRefused = verify === 'on' && /certificate|unknown ca|CERT_|SELF_SIGNED|UNABLE_TO|EXPIRED/i.test(`${err.code} ${err.message}`);
      this.#opts.logger[certRefused ? 'info' : 'debug']({ client: socket.remoteAddress ?? raw?.remoteAddress, code: err.code, err: err.message }, certRefused ? 'client certificate refused' : 'TLS handshake failed');
      socket.destroy();
    });
    this.#tlsServer = front;
    return front;
  }

  /** The current generation's certificates (kept when a generation has none for this listener); refreshes the default context when they changed. */
  #currentCertificates(): CertificateTable | undefined {
    const table = this.#opts.certificates?.();
    if (table && table !== this.#certificates) {
      if (this.#certificates) this.#tlsServer?.setSecureContext(table.serverOptions);
      this.#certificates = table;
    }
    return this.#certificates;
  }

  /** Gives a connection to the protocol that serves it. */
  #dispatch(socket: Socket, isHttp2: boolean): void {
    if (isHttp2 && this.http2) this.http2.accept(socket);
    else this.http1.emit('connection', socket);
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
  }

  /** Answers `req` itself with `status` (505, 417), with its access line and request metric. */
  #refuse(req: IncomingMessage, res: ServerResponse, status: number): void {
    const reqId = requestIdOf(req);
    const bytes = refuse(req, res, status, reqId);
    this.#logRefusal(status, req.method, req.url, bytes, reqId, req.socket);
  }

  /** The access line and request metric of a request refused before any route saw it (nginx logs these too). */
  #logRefusal(status: number, method: string | undefined, path: string | undefined, bytes: number, reqId: string, socket: Socket): void {
    const lc = this.#ctx;
    if (lc.metrics) recordRequest('', method ?? '', status, false, 0, bytes);
    if (!lc.accessLog) return;
    const gen = this.#opts.current();
    const facts = { reqId, method, path, status, bytes, ms: 0, route: undefined, upstream: undefined, error: REFUSAL_CODE[status] ?? 'PRX_ERR_BAD_REQUEST' };
    writeAccessLine(gen.config.log.access_log_options, lc.logger, gen.file, facts, () => ({
      bytesIn: 0,
      tenant: undefined,
      clientIp: socket.remoteAddress,
      clientPort: socket.remotePort,
      host: undefined,
      scheme: lc.scheme,
      httpVersion: '1.1',
      requestHeaders: {},
      responseHeaders: [],
      upstreamMs: -1,
      retries: 0,
      traceId: undefined,
      generation: gen.id,
    }));
  }

  #onClientError(err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Socket): void {
    // A reset, or a client that closed in the middle of a message: nobody is left to answer.
    if (err.code === 'ECONNRESET' || err.code === 'HPE_INVALID_EOF_STATE' || !socket.writable) {
      socket.destroy();
      return;
    }
    const last = (socket as Http1Socket)[kLastResponse];
    if (err.code === 'HPE_CLOSED_CONNECTION') {
      // Bytes after a request that asked to close are ignored (as nginx): the responses to the
      // requests before run out in order, and the connection ends after that request's response.
      if (!last || last.writableFinished) socket.destroySoon();
      return;
    }
    const status = statusForClientError(err, this.#ctx.limits);
    // The id the refusal carries (its access line and its X-Request-Id), so this line joins them.
    const reqId = randomUUID();
    this.#opts.logger.info({ reqId, status, code: err.code, client: socket.remoteAddress, err: err.message }, 'malformed request refused');
    if (last && !last.writableFinished && last.req?.complete) {
      // The bad request was pipelined behind whole ones: they are answered first, in order (RFC
      // 9112 §9.3.2), then this refusal, and the connection closes.
      last.once('finish', () => {
        if (socket.writable && last.shouldKeepAlive) this.#refuseRaw(socket, status, err, reqId);
        else socket.destroySoon();
      });
      last.once('close', () => {
        if (!last.writableFinished) socket.destroy();
      });
      return;
    }
    // A response is still being written on this connection: a 400 written now would be taken as its
    // response, or land in the middle of its body.
    const pending = (socket as Http1Socket)._httpMessage;
    if (pending && !pending.writableFinished) {
      // The error is inside the body of the request being answered (a bad chunk): a response that
      // is all written (a refusal sent before the body was read) goes out, then the connection
      // closes; one still streaming is cut, the only honest answer left.
      if (pending.writableEnded) {
        pending.shouldKeepAlive = false;
        pending.once('close', () => socket.destroySoon());
        return;
      }
      if (pending.headersSent) {
        socket.destroy();
        return;
      }
    }
    // The error is in the body of a request that was already answered in full: a 400 now would be
    // a second response, which a client (or a proxy in front) would pair with its next request.
    if (last?.writableFinished && !last.req.complete) {
      socket.destroySoon();
      return;
    }
    this.#refuseRaw(socket, status, err, reqId);
  }

  /** Writes the listener's own refusal of a request the parser could not read, logs it, and closes the connection. */
  #refuseRaw(socket: Socket, status: number, err: { rawPacket?: Buffer }, reqId: string): void {
    const body = `${status} ${REASONS[status]}\n`;
    socket.end(`HTTP/1.1 ${status} ${REASONS[status]}\r\nDate: ${new Date().toUTCString()}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\nX-Request-Id: ${reqId}\r\nConnection: close\r\n\r\n${body}`);
    // The request line as far as it is readable (the access line of a request the parser refused).
    const line = /^([!-~]{1,32}) ([!-~]{1,2048})/.exec(err.rawPacket?.subarray(0, 2100).toString('latin1') ?? '');
    this.#logRefusal(status, line?.[1], line?.[2], body.length, reqId, socket);
  }

  /**
   * Starts listening; resolves with the bound port (the config may say port 0). With `inherited`
   * (a listening server handed over by the process being replaced) it accepts on that socket
   * instead of binding a new one.
   */
  listen(inherited?: net.Server): Promise<number> {
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

  get listening(): boolean {
    return this.server.listening;
  }

  /**
   * Stops accepting new connections; resolves when every connection has ended. Connections are not
   * cut: a busy one closes after its current response (the caller marks responses
   * `Connection: close` while draining), and a keep-alive connection whose client sends another
   * request gets it answered the same way. Connections still idle after `idleGraceMs` are closed.
   * (node's http `server.close()` would close idle connections at once, racing a client that is
   * just sending its next request; hence net.Server's close.) HTTP/2 connections get GOAWAY at
   * once: their running streams finish, and the client knows which requests were not taken.
   */
  close(idleGraceMs = 1000): Promise<void> {
    return new Promise((resolve) => {
      net.Server.prototype.close.call(this.server, () => resolve());
      this.http2?.close();
      const timer = setTimeout(() => {
        this.http1.closeIdleConnections();
        if (this.server !== this.http1) this.http1.close(() => undefined);
      }, idleGraceMs);
      timer.unref();
    });
  }

  /** Cuts every connection of this listener now (hard stop, or a graceful one that ran out of time). */
  closeAllConnections(): void {
    this.http1.closeAllConnections();
    this.http2?.destroyAll();
    for (const t of this.#tunnels) t.destroy();
    for (const s of this.#sockets) s.destroy();
  }
}

const CERT_ERROR_BODY = '400 The SSL certificate error\n';

/**
 * `verify_client: optional` asks for a client certificate and verifies it when one is sent (nginx's
 * ssl_verify_client optional): a connection whose certificate failed verification gets nginx's
 * answer, 400 "The SSL certificate error", to its first HTTP/1.1 request (HTTP/2: the connection
 * is closed). Returns true when the connection was refused; one without a certificate is let in.
 */
function refuseBadClientCertificate(socket: TLSSocket, logger: Logger, timeoutMs: number): boolean {
  if (!sentUnverifiedClientCertificate(socket)) return false;
  logger.info({ client: socket.remoteAddress, err: String(socket.authorizationError) }, 'client certificate refused');
  if (socket.alpnProtocol === 'h2') {
    socket.destroy();
    return true;
  }
  socket.once('data', () => {
    socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: ${CERT_ERROR_BODY.length}\r\nconnection: close\r\n\r\n${CERT_ERROR_BODY}`);
  });
  socket.on('error', () => socket.destroy());
  socket.setTimeout(timeoutMs, () => socket.destroy());
  return true;
}
