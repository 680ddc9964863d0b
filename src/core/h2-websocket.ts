/**
 * WebSocket over HTTP/2 (RFC 8441): the listener's HTTP/2 server announces
 * SETTINGS_ENABLE_CONNECT_PROTOCOL, and a stream opened with `:method CONNECT`,
 * `:protocol websocket`, `:scheme`, `:path` and `:authority` comes here. Runs once per such
 * stream; the exchange is websocket.ts's, the same as for an HTTP/1.1 Upgrade:
 *
 *   routing as a GET of `:path` on `:authority`, rewrite + access (an exit answers on the stream)
 *   → an HTTP/1.1 Upgrade to a target (`Upgrade: websocket`, a Sec-WebSocket-Key of the proxy's
 *     own, the client's Sec-WebSocket-Version/-Protocol/-Extensions kept)
 *   → 101 with a matching Sec-WebSocket-Accept: `:status 200` (with the 101's end-to-end headers,
 *     Sec-WebSocket-Protocol/-Extensions among them), then the stream's DATA and the upstream
 *     socket are tunnelled with back-pressure (HTTP/2 flow control on this side)
 *   → no switch: a 4xx/5xx is passed back with its body; a 2xx other than 101 (or a bad Accept)
 *     would read as success over HTTP/2, so it is a 502; connect failures 502, timeouts 504.
 *
 * The stream ends with END_STREAM when the upstream closes, with RST_STREAM when either side is cut.
 * Logs and the access line are those of any WebSocket (method CONNECT, `http2: true`). The tunnel is
 * one stream of an HTTP/2 connection: `scriptgate_active_connections` counts that connection (h2).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import http2, { type Http2ServerRequest, type Http2ServerResponse, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { ProxyError } from '../errors.ts';
import type { Generation } from '../control/generation.ts';
import type { ListenerContext } from './exchange.ts';
import type { Refusal } from './request-prelude.ts';
import { proxyWebSocket, type TunnelSet, type UpgradeClient } from './websocket.ts';
import { withoutHeaders } from './hop-by-hop.ts';

/** RFC 6455 §1.3: appended to the key before hashing. */
const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** Connection-specific fields HTTP/2 forbids (RFC 9113 §8.2.2); node throws on them. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te']);
const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL } = http2.constants;
const CONTENT_LENGTH = new Set(['content-length']);

/** Serves one RFC 8441 WebSocket stream; see the module comment. Never throws. */
export function proxyHttp2WebSocket(gen: Generation, lc: ListenerContext, req: Http2ServerRequest, res: Http2ServerResponse, tunnels: TunnelSet): void {
  proxyWebSocket(gen, lc, new Http2Client(req, res.stream), tunnels);
}

/** The Sec-WebSocket-Accept a server owes for `key` (RFC 6455 §4.2.2). */
export function websocketAccept(key: string): string {
  return createHash('sha1').update(key + WEBSOCKET_GUID).digest('base64');
}

/** An HTTP/2 client: answers are HEADERS (and DATA) on its stream, and the stream is the tunnel's client side. */
class Http2Client implements UpgradeClient {
  readonly req: IncomingMessage;
  readonly h2 = true;
  /** The handshake it stands for upstream (RFC 8441 §5: extended CONNECT replaces the GET + Upgrade). */
  readonly method = 'GET';
  readonly side: ServerHttp2Stream;
  readonly early = Buffer.alloc(0);
  #key = '';

  constructor(req: Http2ServerRequest, stream: ServerHttp2Stream) {
    // The compatibility request offers what request-prelude reads (url = :path, headers, socket).
    // It is never read from: the stream's DATA goes to the tunnel.
    this.req = req as unknown as IncomingMessage;
    this.side = stream;
  }

  check(): Refusal | undefined {
    return undefined;
  }

  upgradeRequest(headers: string[]): string[] {
    this.#key = randomBytes(16).toString('base64');
    const out: string[] = [];
    for (let i = 0; i < headers.length; i += 2) {
      // A key (or accept) from the client means nothing over HTTP/2: the proxy's own key goes up.
      if (headers[i] === 'sec-websocket-key' || headers[i] === 'sec-websocket-accept') continue;
      out.push(headers[i]!, headers[i + 1]!);
    }
    out.push('connection', 'upgrade', 'upgrade', 'websocket', 'sec-websocket-key', this.#key);
    return out;
  }

  accept(ures: IncomingMessage, headers: string[]): { status: number; headers: string[] } | ProxyError {
    if (ures.headers['sec-websocket-accept'] !== websocketAccept(this.#key)) {
      return new ProxyError('PRX_ERR_UPSTREAM_PROTOCOL', 'the upstream switched protocols without a valid Sec-WebSocket-Accept');
    }
    const out: string[] = [];
    for (let i = 0; i < headers.length; i += 2) if (headers[i] !== 'sec-websocket-accept') out.push(headers[i]!, headers[i + 1]!);
    const err = this.#respondHead(200, out, false);
    return err ?? { status: 200, headers: out };
  }

  passBack(status: number, _reason: string, headers: string[]): ServerHttp2Stream | ProxyError {
    // Any 2xx opens the tunnel over HTTP/2 (RFC 8441 §5): an upstream that did not switch must not say so.
    if (status >= 200 && status < 300) return new ProxyError('PRX_ERR_UPSTREAM_PROTOCOL', `the upstream answered the WebSocket upgrade with ${status} instead of 101`);
    const err = this.#respondHead(status, headers, false);
    if (err) return err;
    this.#closeWhenSent();
    return this.side;
  }

  respond(status: number, headers: string[], body: Buffer): { status: number; headers: string[]; bytes: number } {
    const out = withoutHeaders(headers, CONTENT_LENGTH);
    out.push('content-length', String(body.length));
    const err = this.#respondHead(status, out, body.length === 0);
    if (err) {
      if (err.code === 'PRX_ERR_CLIENT_ABORTED' || this.side.headersSent) {
        this.destroy();
        return { status, headers: out, bytes: 0 };
      }
      // A head HTTP/2 cannot carry (e.g. a script's exit with two content-type values): a 500, as
      // the other HTTP/2 exchanges answer it, instead of a reset stream.
      const text = Buffer.from(`500 ${err.message}\n`);
      const plain = ['content-type', 'text/plain; charset=utf-8', 'content-length', String(text.length)];
      if (this.#respondHead(500, plain, false)) {
        this.destroy();
        return { status: 500, headers: plain, bytes: 0 };
      }
      this.side.end(text);
      this.#closeWhenSent();
      return { status: 500, headers: plain, bytes: text.length };
    }
    if (body.length) this.side.end(body);
    this.#closeWhenSent();
    return { status, headers: out, bytes: body.length };
  }

  destroy(): void {
    if (!this.side.destroyed) this.side.close(NGHTTP2_CANCEL);
  }

  /** Sends the response HEADERS; a ProxyError when node refuses them (a field HTTP/2 cannot carry). */
  #respondHead(status: number, headers: string[], endStream: boolean): ProxyError | undefined {
    const stream = this.side;
    if (stream.destroyed || stream.headersSent) return new ProxyError('PRX_ERR_CLIENT_ABORTED');
    const head: OutgoingHttpHeaders = { ':status': status };
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      if (CONNECTION_SPECIFIC.has(name)) continue;
      const prev = head[name];
      const value = headers[i + 1]!;
      head[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [String(prev), value];
    }
    try {
      stream.respond(head, { endStream });
      return undefined;
    } catch (err) {
      return new ProxyError('PRX_ERR_UPSTREAM_PROTOCOL', `invalid response head: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * No tunnel follows: once the response is sent, a client still holding its side open is told to
   * stop with RST_STREAM NO_ERROR (RFC 9113 §8.1), so the stream closes and the log runs.
   */
  #closeWhenSent(): void {
    const stream = this.side;
    const close = (): void => {
      if (!stream.closed) stream.close(NGHTTP2_NO_ERROR);
    };
    if (stream.writableFinished) close();
    else stream.once('finish', close);
  }
}
