/**
 * The HTTP/2 side of a listener with `http2: true`: a node:http2 server that never binds a port
 * itself; the listener hands it connections that negotiated `h2` by ALPN (TLS) or opened with the
 * h2c preface (plain). Each stream becomes a request through node's compatibility API
 * (Http2ServerRequest/Response), which the exchange drives like an HTTP/1.1 one, so routing,
 * phases and limits are the same; flow control is nghttp2's, back-pressure the exchange's
 * write()/drain.
 *
 * CONNECT: SETTINGS_ENABLE_CONNECT_PROTOCOL is announced (RFC 8441), and an extended CONNECT with
 * `:protocol websocket` goes to the WebSocket handler (h2-websocket.ts); a plain CONNECT (forward
 * proxying) gets 405 as on HTTP/1.1, another `:protocol` 501.
 *
 * Limits: `http2_max_concurrent_streams` and `max_header_size` (as SETTINGS_MAX_HEADER_LIST_SIZE)
 * are announced to the client; a connection with no open stream for `keepalive_timeout` is closed
 * with GOAWAY. An open WebSocket stream keeps its connection busy.
 */
import http2, { type Http2Server, type Http2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { LimitsConfig } from '../config/schema.ts';
import { ALLOW } from './exchange.ts';

export type Http2RequestHandler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, expectContinue: boolean) => void;
/** An extended CONNECT with `:protocol websocket` (RFC 8441 §4). */
export type Http2WebSocketHandler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;

/**
 * The SETTINGS_MAX_HEADER_LIST_SIZE the listener advertises and node enforces: four times
 * max_header_size, at least 64 KiB, so that a list somewhat over the limit is answered with 431
 * (RFC 9113 §10.5.1) instead of a bare stream reset.
 */
export function h2HeaderListCap(maxHeaderSize: number): number {
  return Math.max(65_536, maxHeaderSize * 4);
}

export class Http2Downstream {
  readonly server: Http2Server;
  readonly #sessions = new Set<Http2Session>();
  readonly #open = new WeakMap<Http2Session, number>();
  #closing = false;

  constructor(limits: LimitsConfig, logger: Logger, onRequest: Http2RequestHandler, onWebSocket?: Http2WebSocketHandler) {
    this.server = http2.createServer({
      settings: {
        maxConcurrentStreams: limits.http2_max_concurrent_streams,
        // Above max_header_size the request gets a 431 (readRequestHead); only a list over this
        // hard cap is refused by node itself, with a stream reset.
        maxHeaderListSize: h2HeaderListCap(limits.max_header_size),
        enablePush: false,
        enableConnectProtocol: onWebSocket !== undefined,
      },
      // node's default of 128 header fields reset requests far below max_header_size (130 cookie
      // crumbs); the size limit is what bounds a header list, as for HTTP/1.1.
      maxHeaderListPairs: 65_536,
    });
    const server = this.server;
    server.on('request', (req, res) => onRequest(req, res, false));
    server.on('checkContinue', (req, res) => onRequest(req, res, true));
    server.on('connect', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
      const protocol = req.headers[':protocol'];
      if (protocol === 'websocket' && onWebSocket) return onWebSocket(req, res);
      logger.info({ method: 'CONNECT', protocol, target: req.url, client: req.socket?.remoteAddress }, protocol === undefined ? 'CONNECT refused: scriptgate is a reverse proxy' : 'extended CONNECT for an unsupported protocol refused');
      if (protocol === undefined) res.writeHead(405, { allow: ALLOW, 'content-length': 0 });
      else res.writeHead(501, { 'content-length': 0 });
      res.end();
    });
    server.on('session', (session: Http2Session) => {
      this.#sessions.add(session);
      this.#open.set(session, 0);
      session.once('close', () => this.#sessions.delete(session));
      session.on('error', (err) => logger.debug({ err: err.message }, 'http2 session error'));
      if (this.#closing) session.close();
      // Idle connections (no open stream) close after keepalive_timeout; busy ones are left alone.
      // A listener of our own: setTimeout's callback (and the server's 'timeout') fires only once.
      session.setTimeout(limits.keepalive_timeout);
      session.on('timeout', () => {
        if (!this.#open.get(session)) session.close();
      });
      // Until its first request the connection is a request head in the making: client_header_timeout
      // bounds it, as on HTTP/1.1 (a client that negotiated h2 and sent nothing was held 75 s).
      const first = setTimeout(() => {
        logger.info({ client: session.socket?.remoteAddress, ms: limits.client_header_timeout }, 'HTTP/2 connection sent no request within client_header_timeout; closed');
        session.destroy();
      }, limits.client_header_timeout);
      first.unref();
      session.once('stream', () => clearTimeout(first));
      session.once('close', () => clearTimeout(first));
    });
    server.on('stream', (stream: ServerHttp2Stream) => {
      // A stream the client reset in the same read as its HEADERS is already gone (no session) here.
      const session = stream.session;
      if (!session) return;
      this.#open.set(session, (this.#open.get(session) ?? 0) + 1);
      stream.once('close', () => this.#open.set(session, (this.#open.get(session) ?? 1) - 1));
    });
  }

  /** On reload: SETTINGS for new connections follow the new limits (open ones keep theirs). */
  applyLimits(limits: LimitsConfig): void {
    this.server.updateSettings({ maxConcurrentStreams: limits.http2_max_concurrent_streams, maxHeaderListSize: h2HeaderListCap(limits.max_header_size) });
  }

  /** Serves HTTP/2 on `socket` (TLS with ALPN h2, or plain starting with the h2c preface). */
  accept(socket: Socket): void {
    this.server.emit('connection', socket);
  }

  /** Sends GOAWAY on every connection: running streams finish, no new ones start. */
  close(): void {
    this.#closing = true;
    for (const s of this.#sessions) s.close();
  }

  /** Cuts every HTTP/2 connection now. */
  destroyAll(): void {
    for (const s of this.#sessions) s.destroy();
  }
}
