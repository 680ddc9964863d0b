/**
 * WebSocket proxying. Runs once per WebSocket handshake, on the generation current at arrival
 * (pinned until the tunnel closes, so a hot reload never cuts it): an HTTP/1.1 Upgrade request
 * (the `upgrade` event of a listener's HTTP/1.1 server) or an HTTP/2 extended CONNECT (RFC 8441,
 * h2-websocket.ts). The exchange is the same for both; an `UpgradeClient` says how the client is
 * answered and what the tunnel runs on (`Http1Client` below: the connection itself).
 *
 *   request-prelude (target, Host, route, rewrite + access)   exit/redirect → that response, no tunnel
 *   → connect a target (stream-connect: balancing, health, failover, TLS origination)
 *   → HTTP/1.1 Upgrade request upstream (Host/X-Forwarded-* as for any request, Sec-WebSocket-* kept)
 *   → 101: the client's success answer (HTTP/1.1: the 101; HTTP/2: 200) and the two sides are
 *     piped (stream-tunnel: back-pressure, idle timeout)
 *     other status: that response goes back, then the connection (or stream) closes
 *   → log phase and the access line when the tunnel (or the refused request) has closed.
 *
 * Only `Upgrade: websocket` comes here: the listener serves an Upgrade to anything else (h2c, …)
 * as a plain request, as nginx does. A handshake with a body is refused with 400 (RFC 6455 §4.1:
 * a GET without one). Default idle timeout: `limits.websocket_idle_timeout` (60s, nginx's
 * proxy_read_timeout). header_filter and body_filter do not run: there is no HTTP response body to filter.
 */
import http, { type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { ProxyError, isProxyError, type ErrorCode } from '../errors.ts';
import type { Generation } from '../control/generation.ts';
import type { RouteScripts, ScriptSession } from '../phases/contract.ts';
import type { Target, Upstream } from '../upstream/upstream.ts';
import { recordRequest, scriptErrors, trackConnection, upstreamDuration } from '../observability/metrics.ts';
import { observeSession, startRequestTracing, type RequestTracing } from '../observability/request-telemetry.ts';
import { reportScriptError } from '../observability/error-report.ts';
import type { ListenerContext } from './exchange.ts';
import { forwardResponseHeaders, isHopByHop, withoutHeaders } from './hop-by-hop.ts';
import { requestExtras, writeAccessLine } from '../observability/access-log.ts';
import { matchRoute, newRequestPlan, readRequestHead, runRequestScripts, scriptRequestOf, upstreamHeaders, viaEntry, type Refusal, type RequestPlan } from './request-prelude.ts';
import { connectUpstream, type ConnectAttempt } from './stream-connect.ts';
import { startTunnel, type Tunnel, type TunnelSide, type TunnelStats } from './stream-tunnel.ts';

/** Headers a local answer on the client's connection sets itself (it is closed after the answer). */
const FRAMING = new Set(['content-length', 'transfer-encoding', 'connection']);

/** Where a listener keeps its open tunnels, so a hard stop can cut them. */
export type TunnelSet = Set<Tunnel>;

/**
 * True when an HTTP/1.1 Upgrade request asks for WebSocket: one of the protocols its Upgrade
 * header offers (`name[/version]`, comma-separated) is `websocket`, in any case.
 */
export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const value = req.headers.upgrade;
  if (value === undefined) return false;
  for (const offer of value.split(',')) {
    const name = offer.trim();
    const slash = name.indexOf('/');
    if ((slash < 0 ? name : name.slice(0, slash)).toLowerCase() === 'websocket') return true;
  }
  return false;
}

/**
 * The client side of a WebSocket handshake: how the exchange answers it and what the tunnel runs
 * on. `Http1Client` (below) is an HTTP/1.1 connection; h2-websocket.ts has the HTTP/2 stream.
 */
export interface UpgradeClient {
  /** The request as request-prelude reads it (IncomingMessage, or http2's compatibility request). */
  readonly req: IncomingMessage;
  /** The client speaks HTTP/2 (Host from :authority, no Transfer-Encoding rules). */
  readonly h2: boolean;
  /** The method routes match and the upstream Upgrade request is sent with. */
  readonly method: string;
  /** What the tunnel runs on; its 'close' before a tunnel exists ends the exchange. */
  readonly side: TunnelSide;
  /** Bytes the client sent after its handshake, forwarded to the upstream once it switched. */
  readonly early: Buffer;
  /** A refusal before routing (e.g. a handshake with a body), or nothing. */
  check(): Refusal | undefined;
  /** The upstream request's headers, given the proxied ones: adds what asks for the upgrade on the proxy's own hop. */
  upgradeRequest(headers: string[]): string[];
  /**
   * The upstream switched protocols: sends the client its success answer with `headers` (the
   * 101's end-to-end headers, Via included) and returns what was sent; or a ProxyError when the
   * 101 is not a valid answer to the request (nothing was sent then).
   */
  accept(ures: IncomingMessage, headers: string[]): { status: number; headers: string[] } | ProxyError;
  /**
   * The upstream answered without switching: sends its status and `headers` and returns where its
   * body goes (ended with it, then the client is done); or a ProxyError when that answer cannot be
   * passed on as it is.
   */
  passBack(status: number, reason: string, headers: string[]): Writable | ProxyError;
  /**
   * A response the proxy makes itself (an exit, an error), then the end. Returns what was sent:
   * a head the protocol cannot carry (HTTP/2: a repeated single-value field) becomes a 500.
   */
  respond(status: number, headers: string[], body: Buffer): { status: number; headers: string[]; bytes: number };
  /** Cuts the client now (its answer already started). */
  destroy(): void;
}

const REQUEST_ID: ReadonlySet<string> = new Set(['x-request-id']);

/** Serves one HTTP/1.1 WebSocket Upgrade request; see the module comment. Never throws. */
export function proxyUpgrade(gen: Generation, lc: ListenerContext, req: IncomingMessage, socket: Socket, head: Buffer, tunnels: TunnelSet): void {
  new UpgradeExchange(gen, lc, new Http1Client(req, socket, head, lc.metrics), tunnels).start();
}

/** Starts the exchange for a WebSocket handshake of any client kind (h2-websocket.ts uses it). Never throws. */
export function proxyWebSocket(gen: Generation, lc: ListenerContext, client: UpgradeClient, tunnels: TunnelSet): void {
  new UpgradeExchange(gen, lc, client, tunnels).start();
}

/** An HTTP/1.1 client: answers are written on its socket, and the socket is the tunnel's client side. */
class Http1Client implements UpgradeClient {
  readonly req: IncomingMessage;
  readonly h2 = false;
  readonly method: string;
  readonly side: Socket;
  readonly early: Buffer;
  readonly #metrics: boolean;

  constructor(req: IncomingMessage, socket: Socket, head: Buffer, metrics: boolean) {
    this.req = req;
    this.method = req.method ?? 'GET';
    this.side = socket;
    this.early = head;
    this.#metrics = metrics;
  }

  check(): Refusal | undefined {
    // RFC 6455 §4.1: the handshake is a GET without a body. node's parser would hand the body over
    // as tunnel bytes, and the upstream would wait for one that never comes.
    const { 'content-length': cl, 'transfer-encoding': te } = this.req.headers;
    if (te !== undefined || (cl !== undefined && cl !== '0')) return { status: 400, code: 'PRX_ERR_BAD_REQUEST', detail: 'a WebSocket handshake has no body' };
    return undefined;
  }

  upgradeRequest(headers: string[]): string[] {
    // Upgrade and Connection are hop-by-hop: the proxy asks for the same upgrade on its own hop.
    headers.push('connection', 'upgrade', 'upgrade', 'websocket');
    return headers;
  }

  accept(ures: IncomingMessage, headers: string[]): { status: number; headers: string[] } {
    const out = headers.concat('connection', 'upgrade', 'upgrade', String(ures.headers.upgrade ?? 'websocket'));
    this.side.write(responseHead(101, ures.statusMessage || 'Switching Protocols', out));
    this.side.setNoDelay(true);
    // Counted once: the HTTP/1.1 connection is a websocket one from now on.
    if (this.#metrics) trackConnection('websocket', this.side);
    return { status: 101, headers: out };
  }

  passBack(status: number, reason: string, headers: string[]): Writable {
    const out = headers.concat('connection', 'close');
    // Without Content-Length the body is delimited by the close (the chunked framing was removed).
    this.side.write(responseHead(status, reason || http.STATUS_CODES[status] || '', out));
    this.#drain();
    return this.side;
  }

  respond(status: number, headers: string[], body: Buffer): { status: number; headers: string[]; bytes: number } {
    const out = withoutHeaders(headers, FRAMING);
    out.push('content-length', String(body.length), 'connection', 'close');
    if (this.side.writable) {
      this.side.end(Buffer.concat([Buffer.from(responseHead(status, http.STATUS_CODES[status] ?? '', out), 'latin1'), body]));
      this.#drain();
    } else this.side.destroy();
    return { status, headers: out, bytes: body.length };
  }

  destroy(): void {
    this.side.destroy();
  }

  /** No tunnel will follow: whatever else the client sends is read and dropped, so its FIN is seen and the socket closes. */
  #drain(): void {
    this.side.resume();
  }
}

class UpgradeExchange {
  readonly #gen: Generation;
  readonly #lc: ListenerContext;
  readonly #client: UpgradeClient;
  readonly #req: IncomingMessage;
  readonly #tunnels: TunnelSet;
  readonly #start = performance.now();
  #plan: RequestPlan | undefined;
  #scripts: RouteScripts | undefined;
  #session: ScriptSession | undefined;
  #logger: Logger | undefined;
  #upstream: Upstream | undefined;
  #target: Target | undefined;
  #connecting: ConnectAttempt | undefined;
  #upstreamRequest: http.ClientRequest | undefined;
  #tunnel: Tunnel | undefined;
  #status = 0;
  #responseHeaders: string[] = [];
  #bytesSent = 0;
  #bytesReceived = 0;
  #tConnected = -1;
  #tHeader = -1;
  #tDispatch = -1;
  #error: ErrorCode | '' = '';
  #done = false;
  /** The handshake's trace (config `tracing:`), as a request's: server span, phase spans, the upstream try's span. */
  #tracing: RequestTracing | undefined;
  /** Taken at the start: node forgets the peer of a socket that has closed. */
  readonly #clientIp: string | undefined;
  readonly #clientPort: number | undefined;

  constructor(gen: Generation, lc: ListenerContext, client: UpgradeClient, tunnels: TunnelSet) {
    this.#gen = gen;
    this.#lc = lc;
    this.#client = client;
    this.#req = client.req;
    this.#tunnels = tunnels;
    this.#clientIp = client.req.socket?.remoteAddress;
    this.#clientPort = client.req.socket?.remotePort;
    gen.acquire();
    client.side.on('error', () => {
      this.#error ||= 'PRX_ERR_CLIENT_ABORTED';
    });
    client.side.once('close', () => {
      // Before the tunnel exists, the client leaving ends everything; afterwards the tunnel reports.
      if (!this.#tunnel) this.#finish();
    });
  }

  start(): void {
    try {
      this.#begin();
    } catch (err) {
      this.#fail(err);
    }
  }

  #begin(): void {
    const req = this.#req;
    const client = this.#client;
    const plan = (this.#plan = newRequestPlan(req));
    plan.method = client.method;
    if (this.#gen.config.tracing) this.#tracing = startRequestTracing(this.#gen.config, this.#lc.logger, req, this.#lc.scheme);
    const refused = readRequestHead(plan, req, this.#lc.limits, client.h2) ?? client.check() ?? matchRoute(plan, this.#gen.router, req, this.#lc.limits.underscores_in_headers);
    if (refused) return this.#local(refused.status, refused.code, refused.detail);
    const route = plan.route!;
    const scripts = this.#gen.scripts?.route(route.index);
    if (scripts) {
      this.#scripts = scripts;
      const sreq = scriptRequestOf(plan, req, this.#lc.scheme);
      this.#logger = this.#lc.logger.child({ reqId: plan.id, route: route.name, tenant: route.config.tenant });
      this.#session = scripts.open(sreq, this.#logger);
      if (this.#lc.metrics || this.#tracing) this.#session = observeSession(this.#session, scripts.has, route.config.tenant, this.#lc.metrics, this.#tracing);
      const exit = runRequestScripts(scripts, this.#session, sreq, plan);
      if (exit) return this.#respond(exit.status, exit.headers, exit.body);
    }
    const name = plan.upstreamName;
    if (name === undefined) return this.#local(503, 'PRX_ERR_NO_TARGET', 'route has no upstream');
    const upstream = this.#gen.upstreams.get(name);
    if (!upstream) return this.#local(500, 'PRX_ERR_NO_TARGET', `unknown upstream ${JSON.stringify(name)}`);
    this.#upstream = upstream;
    const clientIp = req.socket.remoteAddress ?? '';
    const via = this.#gen.config.via;
    const headers = client.upgradeRequest(upstreamHeaders(plan, clientIp, this.#lc.scheme, via && viaEntry(req.httpVersion, via), req.socket.localPort));
    this.#tracing?.upstreamHeaders(headers);
    const hashKey = upstream.hashKey({ headers, clientIp, path: plan.path });
    this.#tDispatch = performance.now();
    this.#connecting = connectUpstream(upstream, { hashKey, alpn: ['http/1.1'] }, (err, conn) => {
      this.#connecting = undefined;
      if (err) return this.#fail(err);
      this.#target = conn!.target;
      this.#tConnected = performance.now();
      this.#tracing?.upstreamTry(headers, upstream.name, conn!.target.address, 0);
      this.#sendUpgrade(conn!.socket, headers);
    });
  }

  /** Sends the Upgrade request on the connected socket and waits for the upstream's answer. */
  #sendUpgrade(usocket: Socket, headers: string[]): void {
    const plan = this.#plan!;
    const path = plan.query ? `${plan.path}?${plan.query}` : plan.path;
    const ureq = http.request({ method: plan.method, path, headers, setHost: false, createConnection: () => usocket });
    this.#upstreamRequest = ureq;
    const readTimeout = this.#upstream!.config.timeouts.read;
    const timer = setTimeout(() => ureq.destroy(new ProxyError('PRX_ERR_UPSTREAM_TIMEOUT', `no answer to the upgrade within ${readTimeout} ms`)), readTimeout);
    ureq.once('upgrade', (ures: IncomingMessage, s: Socket, uhead: Buffer) => {
      clearTimeout(timer);
      this.#open(ures, s, uhead);
    });
    ureq.once('response', (ures: IncomingMessage) => {
      clearTimeout(timer);
      this.#passBack(ures, usocket);
    });
    ureq.once('error', (err: Error) => {
      clearTimeout(timer);
      if (this.#done || this.#tunnel) return;
      const e = isProxyError(err) ? err : new ProxyError('PRX_ERR_UPSTREAM_PROTOCOL', `upgrade request failed: ${err.message}`, { cause: err });
      if (e.code === 'PRX_ERR_UPSTREAM_TIMEOUT' || e.code === 'PRX_ERR_UPSTREAM_PROTOCOL') this.#upstream!.failed(this.#target!, e.code);
      this.#fail(e);
    });
    ureq.end();
  }

  /** The upstream's answer to the handshake arrived: its time (metric) and the upstream try's span. */
  #answered(status: number): void {
    this.#tHeader = performance.now();
    if (this.#lc.metrics) upstreamDuration.observe({ upstream: this.#upstream!.name }, (this.#tHeader - this.#tDispatch) / 1000);
    this.#tracing?.upstreamDone(status);
  }

  /** 101 from the upstream: the client gets its success answer and the two sides are tunnelled. */
  #open(ures: IncomingMessage, usocket: Socket, uhead: Buffer): void {
    this.#answered(ures.statusCode ?? 101);
    const client = this.#client;
    const side = client.side;
    if (this.#done || side.destroyed) {
      usocket.destroy();
      return;
    }
    const out = this.#withProxyHeaders(forwardResponseHeaders(ures.headers), ures, false);
    const sent = client.accept(ures, out);
    if (isProxyError(sent)) {
      usocket.destroy();
      this.#upstream!.failed(this.#target!, sent.code);
      return this.#fail(sent);
    }
    this.#status = sent.status;
    this.#responseHeaders = sent.headers;
    usocket.setNoDelay(true);
    if (uhead.length) {
      side.write(uhead);
      this.#bytesSent += uhead.length;
    }
    if (client.early.length) {
      usocket.write(client.early);
      this.#bytesReceived += client.early.length;
    }
    const tunnel = startTunnel(side, usocket, {
      idleMs: this.#lc.limits.websocket_idle_timeout,
      cutClient: () => client.destroy(),
      onClose: (stats) => this.#closed(stats),
    });
    this.#tunnel = tunnel;
    this.#tunnels.add(tunnel);
  }

  #closed(stats: TunnelStats): void {
    this.#tunnels.delete(this.#tunnel!);
    this.#bytesSent += stats.bytesToClient;
    this.#bytesReceived += stats.bytesFromClient;
    this.#error ||= stats.error === 'PRX_ERR_CLIENT_ABORTED' ? '' : stats.error;
    this.#finish();
  }

  /**
   * The proxy's own fields on the upstream's answer, as on every proxied response: its
   * X-Request-Id (replacing the upstream's), Via when configured, and (`date`) a Date when the
   * upstream sent none.
   */
  #withProxyHeaders(headers: string[], ures: IncomingMessage, date: boolean): string[] {
    const out = ures.headers['x-request-id'] === undefined ? headers : withoutHeaders(headers, REQUEST_ID);
    if (this.#plan) out.push('x-request-id', this.#plan.id);
    const via = this.#gen.config.via;
    if (via) out.push('via', viaEntry(ures.httpVersion, via));
    if (date && ures.headers.date === undefined) out.push('date', new Date().toUTCString());
    return out;
  }

  /** The upstream answered without upgrading (403, 426, …): that response goes back, then the client is done. */
  #passBack(ures: IncomingMessage, usocket: Socket): void {
    this.#answered(ures.statusCode ?? 0);
    if (this.#done || this.#client.side.destroyed) {
      usocket.destroy();
      return;
    }
    const out = this.#withProxyHeaders(forwardResponseHeaders(ures.headers), ures, true);
    const status = ures.statusCode ?? 502;
    const body = this.#client.passBack(status, ures.statusMessage ?? '', out);
    if (isProxyError(body)) {
      usocket.destroy();
      this.#upstream!.failed(this.#target!, body.code);
      return this.#fail(body);
    }
    this.#status = status;
    this.#responseHeaders = out;
    ures.on('data', (c: Buffer) => (this.#bytesSent += c.length));
    ures.pipe(body);
    ures.once('end', () => usocket.destroy());
    ures.once('error', () => this.#client.destroy());
  }

  /** A response the proxy makes itself (a script's exit, an error), then the client is done. */
  #respond(status: number, headers: string[], body: string | Uint8Array): void {
    if (this.#client.h2 && status >= 200 && status < 300) {
      // Over HTTP/2 a 2xx to the extended CONNECT *is* the accepted tunnel (RFC 8441 §5): a script's
      // 2xx answer cannot be told from one, so it becomes a 500 naming the cause.
      this.#error = 'PRX_ERR_SCRIPT_RESULT';
      status = 500;
      headers = ['content-type', 'text/plain; charset=utf-8'];
      body = '500 a script answered an HTTP/2 WebSocket handshake with 2xx, which would accept the tunnel; answer 4xx to refuse it\n';
    }
    const buf = typeof body === 'string' ? Buffer.from(body) : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    // The proxy frames the answer (hop-by-hop fields a script gave are dropped) and names the request.
    const own: string[] = [];
    let named = false;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!.toLowerCase();
      if (isHopByHop(name)) continue;
      if (name === 'x-request-id') named = true;
      own.push(headers[i]!, headers[i + 1]!);
    }
    if (!named && this.#plan) own.push('x-request-id', this.#plan.id);
    const sent = this.#client.respond(status, own, buf);
    if (sent.status !== status) this.#error ||= 'PRX_ERR_SCRIPT_RESULT';
    this.#status = sent.status;
    this.#bytesSent = sent.bytes;
    this.#responseHeaders = sent.headers;
  }

  #local(status: number, code: ErrorCode, detail?: string): void {
    this.#error = code;
    this.#respond(status, ['content-type', 'text/plain; charset=utf-8', 'x-request-id', this.#plan?.id ?? '-'], `${status} ${detail ?? new ProxyError(code).message}\n`);
  }

  #fail(err: unknown): void {
    if (this.#done) return;
    if (this.#status) {
      // The upstream's own answer already started: cut it rather than splice a second response in.
      this.#client.destroy();
      return;
    }
    const e = isProxyError(err) ? err : new ProxyError('PRX_ERR_INTERNAL', (err as Error)?.message ?? String(err), { cause: err });
    const logger = this.#logger ?? this.#lc.logger;
    // Throttling is no script failure: the tenant's own warning and metric say it (as in exchange.ts).
    if (e.code === 'PRX_ERR_TENANT_THROTTLED') {
      // nothing per request
    } else if (e.source === 'script') {
      if (this.#lc.metrics) scriptErrors.inc({ tenant: this.#plan?.route?.config.tenant ?? 'default', code: e.code });
      reportScriptError(e, { route: this.#plan?.route?.name, tenant: this.#plan?.route?.config.tenant, reqId: this.#plan?.id });
      logger.error({ reqId: this.#plan?.id, code: e.code, err: e.message }, 'script failed');
    } else logger.warn({ reqId: this.#plan?.id, upstream: this.#upstream?.name, target: this.#target?.address, code: e.code, err: e.message }, 'websocket upgrade failed');
    this.#local(e.status, e.code, e.source === 'script' ? 'script error' : undefined);
  }

  /** Runs once, when the client side has closed (tunnel ended, or the request was answered). */
  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    this.#connecting?.cancel();
    this.#upstreamRequest?.destroy();
    if (this.#target) this.#target.inFlight--;
    const total = performance.now() - this.#start;
    const status = this.#status || 499;
    if (!this.#status) this.#error ||= 'PRX_ERR_CLIENT_ABORTED';
    const plan = this.#plan;
    if (this.#session) {
      if (this.#scripts!.has.log) {
        this.#session.log({
          status,
          bytesSent: this.#bytesSent,
          bytesReceived: this.#bytesReceived,
          timings: {
            total,
            upstreamConnect: this.#tConnected >= 0 ? this.#tConnected - this.#start : -1,
            upstreamHeader: this.#tHeader >= 0 ? this.#tHeader - this.#start : -1,
            // For a tunnel: how long it was open.
            upstreamBody: this.#tHeader >= 0 ? performance.now() - this.#tHeader : -1,
          },
          upstreamAddress: this.#target?.address ?? '',
          responseHeaders: this.#responseHeaders,
          error: this.#error,
        });
      }
      this.#session.close();
    }
    this.#tracing?.finish(this.#req.method ?? '', plan?.route?.name, status, this.#error);
    if (this.#lc.metrics) recordRequest(plan?.route?.name ?? '', this.#req.method ?? '', status, status === 499, total / 1000, this.#bytesSent, this.#bytesReceived);
    if (this.#lc.accessLog) {
      // Through the generation's access-log sink (its file, syslog and fields), as every request's line.
      const req = this.#req;
      const facts = {
        reqId: plan?.id ?? '',
        method: req.method,
        path: req.url,
        status,
        bytes: this.#bytesSent,
        bytes_in: this.#bytesReceived,
        ms: Math.round(total * 1000) / 1000,
        route: plan?.route?.name,
        upstream: this.#target?.address,
        websocket: true,
        ...(this.#client.h2 ? { http2: true } : {}),
        ...(this.#error ? { error: this.#error } : {}),
      };
      writeAccessLine(this.#gen.config.log.access_log_options, this.#lc.logger, this.#gen.file, facts, () => ({
        bytesIn: this.#bytesReceived,
        tenant: plan?.route?.config.tenant,
        clientIp: this.#clientIp,
        clientPort: this.#clientPort,
        ...requestExtras(req, this.#lc.scheme),
        responseHeaders: this.#responseHeaders,
        upstreamMs: this.#tHeader >= 0 && this.#tConnected >= 0 ? this.#tHeader - this.#tConnected : -1,
        retries: 0,
        traceId: this.#tracing?.traceId,
        generation: this.#gen.id,
      }));
    }
    this.#gen.release();
  }
}

/** `HTTP/1.1 <status> <reason>` and the header lines, up to the blank line. */
function responseHead(status: number, reason: string, headers: string[]): string {
  let out = `HTTP/1.1 ${status} ${reason.replace(/[\r\n]/g, '')}\r\n`;
  for (let i = 0; i < headers.length; i += 2) out += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${out}\r\n`;
}
