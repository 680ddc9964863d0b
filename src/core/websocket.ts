/**
 * WebSocket (and any other HTTP/1.1 Upgrade) proxying. Runs on the `upgrade` event of a
 * listener's HTTP/1.1 server, once per Upgrade request, on the generation current at arrival
 * (pinned until the tunnel closes, so a hot reload never cuts it).
 *
 *   request-prelude (target, Host, route, rewrite + access)   exit/redirect → that response, no tunnel
 *   → connect a target (stream-connect: balancing, health, failover, TLS origination)
 *   → HTTP/1.1 Upgrade request upstream (Host/X-Forwarded-* as for any request, Sec-WebSocket-* kept)
 *   → 101: the 101 goes back and the two sockets are piped (stream-tunnel: back-pressure, idle timeout)
 *     other status: that response goes back, then the connection closes
 *   → log phase and the access line when the tunnel (or the refused request) has closed.
 *
 * Default idle timeout: `limits.websocket_idle_timeout` (60s, nginx's proxy_read_timeout).
 * header_filter and body_filter do not run: there is no HTTP response body to filter.
 */
import http, { type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { ProxyError, isProxyError, type ErrorCode } from '../errors.ts';
import type { Generation } from '../control/generation.ts';
import type { RouteScripts, ScriptSession } from '../phases/contract.ts';
import type { Target, Upstream } from '../upstream/upstream.ts';
import { recordRequest, scriptErrors, trackConnection } from '../observability/metrics.ts';
import { reportScriptError } from '../observability/error-report.ts';
import type { ListenerContext } from './exchange.ts';
import { forwardResponseHeaders } from './hop-by-hop.ts';
import { matchRoute, newRequestPlan, readRequestHead, runRequestScripts, scriptRequestOf, upstreamHeaders, viaEntry, type RequestPlan } from './request-prelude.ts';
import { connectUpstream, type ConnectAttempt } from './stream-connect.ts';
import { startTunnel, type Tunnel, type TunnelStats } from './stream-tunnel.ts';

/** Where a listener keeps its open tunnels, so a hard stop can cut them. */
export type TunnelSet = Set<Tunnel>;

/** Serves one Upgrade request; see the module comment. Never throws. */
export function proxyUpgrade(gen: Generation, lc: ListenerContext, req: IncomingMessage, socket: Socket, head: Buffer, tunnels: TunnelSet): void {
  new UpgradeExchange(gen, lc, req, socket, head, tunnels).start();
}

class UpgradeExchange {
  readonly #gen: Generation;
  readonly #lc: ListenerContext;
  readonly #req: IncomingMessage;
  readonly #socket: Socket;
  /** Bytes the client sent after the request head (a first frame), forwarded once connected. */
  readonly #head: Buffer;
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
  #error: ErrorCode | '' = '';
  #done = false;

  constructor(gen: Generation, lc: ListenerContext, req: IncomingMessage, socket: Socket, head: Buffer, tunnels: TunnelSet) {
    this.#gen = gen;
    this.#lc = lc;
    this.#req = req;
    this.#socket = socket;
    this.#head = head;
    this.#tunnels = tunnels;
    gen.acquire();
    socket.on('error', () => {
      this.#error ||= 'PRX_ERR_CLIENT_ABORTED';
    });
    socket.once('close', () => {
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
    const plan = (this.#plan = newRequestPlan(req));
    const refused = readRequestHead(plan, req, this.#lc.limits, false) ?? matchRoute(plan, this.#gen.router, req);
    if (refused) return this.#local(refused.status, refused.code, refused.detail);
    const route = plan.route!;
    const scripts = this.#gen.scripts?.route(route.index);
    if (scripts) {
      this.#scripts = scripts;
      const sreq = scriptRequestOf(plan, req, this.#lc.scheme);
      this.#logger = this.#lc.logger.child({ reqId: plan.id, route: route.name, tenant: route.config.tenant });
      this.#session = scripts.open(sreq, this.#logger);
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
    const headers = upstreamHeaders(plan, clientIp, this.#lc.scheme, via && viaEntry(req.httpVersion, via));
    // Upgrade and Connection are hop-by-hop: the proxy asks for the same upgrade on its own hop.
    headers.push('connection', 'upgrade', 'upgrade', String(req.headers.upgrade ?? 'websocket'));
    const hashKey = upstream.hashKey({ headers, clientIp, path: plan.path });
    this.#connecting = connectUpstream(upstream, { hashKey, alpn: ['http/1.1'] }, (err, conn) => {
      this.#connecting = undefined;
      if (err) return this.#fail(err);
      this.#target = conn!.target;
      this.#tConnected = performance.now();
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

  /** 101 from the upstream: send it on and tunnel the two sockets. */
  #open(ures: IncomingMessage, usocket: Socket, uhead: Buffer): void {
    this.#tHeader = performance.now();
    const socket = this.#socket;
    if (this.#done || socket.destroyed) {
      usocket.destroy();
      return;
    }
    const out = forwardResponseHeaders(ures.headers);
    out.push('connection', 'upgrade', 'upgrade', String(ures.headers.upgrade ?? this.#req.headers.upgrade ?? 'websocket'));
    const via = this.#gen.config.via;
    if (via) out.push('via', viaEntry(ures.httpVersion, via));
    this.#status = 101;
    this.#responseHeaders = out;
    socket.write(responseHead(101, ures.statusMessage || 'Switching Protocols', out));
    usocket.setNoDelay(true);
    if (uhead.length) {
      socket.write(uhead);
      this.#bytesSent += uhead.length;
    }
    if (this.#head.length) {
      usocket.write(this.#head);
      this.#bytesReceived += this.#head.length;
    }
    if (this.#lc.metrics) trackConnection('websocket', socket);
    const tunnel = startTunnel(socket, usocket, {
      idleMs: this.#lc.limits.websocket_idle_timeout,
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

  /** The upstream answered without upgrading (403, 426, …): that response goes back, then the connection closes. */
  #passBack(ures: IncomingMessage, usocket: Socket): void {
    this.#tHeader = performance.now();
    const socket = this.#socket;
    if (this.#done || socket.destroyed) {
      usocket.destroy();
      return;
    }
    const out = forwardResponseHeaders(ures.headers);
    out.push('connection', 'close');
    const status = ures.statusCode ?? 502;
    this.#status = status;
    this.#responseHeaders = out;
    // Without Content-Length the body is delimited by the close (the chunked framing was removed).
    socket.write(responseHead(status, ures.statusMessage || http.STATUS_CODES[status] || '', out));
    ures.on('data', (c: Buffer) => (this.#bytesSent += c.length));
    ures.pipe(socket);
    ures.once('end', () => usocket.destroy());
    ures.once('error', () => socket.destroy());
  }

  /** A response the proxy makes itself (a script's exit, an error), then the connection closes. */
  #respond(status: number, headers: string[], body: string | Uint8Array): void {
    this.#status = status;
    const buf = typeof body === 'string' ? Buffer.from(body) : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    const out: string[] = [];
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!.toLowerCase();
      if (name === 'content-length' || name === 'transfer-encoding' || name === 'connection') continue;
      out.push(name, headers[i + 1]!);
    }
    out.push('content-length', String(buf.length), 'connection', 'close');
    this.#responseHeaders = out;
    this.#bytesSent = buf.length;
    if (this.#socket.writable) this.#socket.end(Buffer.concat([Buffer.from(responseHead(status, http.STATUS_CODES[status] ?? '', out), 'latin1'), buf]));
    else this.#socket.destroy();
  }

  #local(status: number, code: ErrorCode, detail?: string): void {
    this.#error = code;
    this.#respond(status, ['content-type', 'text/plain; charset=utf-8', 'x-request-id', this.#plan?.id ?? '-'], `${status} ${detail ?? new ProxyError(code).message}\n`);
  }

  #fail(err: unknown): void {
    if (this.#done) return;
    if (this.#status) {
      // The upstream's own answer already started: cut it rather than splice a second response in.
      this.#socket.destroy();
      return;
    }
    const e = isProxyError(err) ? err : new ProxyError('PRX_ERR_INTERNAL', (err as Error)?.message ?? String(err), { cause: err });
    const logger = this.#logger ?? this.#lc.logger;
    if (e.source === 'script') {
      if (this.#lc.metrics) scriptErrors.inc({ tenant: this.#plan?.route?.config.tenant ?? 'default', code: e.code });
      reportScriptError(e, { route: this.#plan?.route?.name, tenant: this.#plan?.route?.config.tenant, reqId: this.#plan?.id });
      logger.error({ reqId: this.#plan?.id, code: e.code, err: e.message }, 'script failed');
    } else logger.warn({ reqId: this.#plan?.id, upstream: this.#upstream?.name, target: this.#target?.address, code: e.code, err: e.message }, 'websocket upgrade failed');
    this.#local(e.status, e.code, e.source === 'script' ? 'script error' : undefined);
  }

  /** Runs once, when the client connection has closed (tunnel ended, or the request was answered). */
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
    if (this.#lc.metrics) recordRequest(plan?.route?.name ?? '', this.#req.method ?? '', status, status === 499, total / 1000, this.#bytesSent, this.#bytesReceived);
    if (this.#lc.accessLog) {
      this.#lc.logger.info(
        {
          reqId: plan?.id,
          method: this.#req.method,
          path: this.#req.url,
          status,
          bytes: this.#bytesSent,
          bytes_in: this.#bytesReceived,
          ms: Math.round(total * 1000) / 1000,
          route: plan?.route?.name,
          upstream: this.#target?.address,
          websocket: true,
          ...(this.#error ? { error: this.#error } : {}),
        },
        'access',
      );
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
