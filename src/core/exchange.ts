/**
 * One proxied HTTP request, from the parsed request head to the access log line. Created by the
 * listener's request handler; it is also the undici dispatch handler of its upstream request, so
 * response head, body chunks and errors arrive here as callbacks (undici's
 * `onResponseStart/Data/End/Error(controller, …)`), and back-pressure is the controller's
 * pause/resume driven by the client socket's `drain`.
 *
 * Order of work: parse target → route → rewrite+access scripts → pick target → dispatch →
 * header_filter → body_filter per chunk → end → log (after the client has everything).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { constants as http2Constants } from 'node:http2';
import type { Dispatcher } from 'undici';
import type { Logger } from 'pino';
import { ERRORS, ProxyError, isProxyError, type ErrorCode } from '../errors.ts';
import type { Generation } from '../control/generation.ts';
import type { LimitsConfig } from '../config/schema.ts';
import type { ResponseHead, ScriptSession, RouteScripts } from '../phases/contract.ts';
import type { Target, Upstream } from '../upstream/upstream.ts';
import { forwardResponseHeaders, headerIn, scriptFramedHeaders, withoutHeaders } from './hop-by-hop.ts';
import type { CompiledRoute } from './router.ts';
import { matchRoute, maxForwards, newRequestPlan, readRequestHead, runRequestScripts, scriptRequestOf, upstreamHeaders, viaEntry, type RequestPlan } from './request-prelude.ts';
import { watchBodyProgress } from './body-timeout.ts';
import { ignoreError, limitBody, type BodyCounter } from './body-limit.ts';
import { mapUpstreamError } from './upstream-errors.ts';
import { clearHeaders, sendLocal } from './local-response.ts';
import { ScriptedResponse, type ResponseWriter } from './scripted-response.ts';
import { endGrpc, sendTrailersOnly, grpcStatusForError, grpcStatusForHttp, isGrpcContentType, parseGrpcTimeout } from './grpc.ts';
import { recordRequest, scriptErrors, upstreamDuration, upstreamFailures, upstreamRetries } from '../observability/metrics.ts';
import { requestExtras, writeAccessLine, type AccessFacts } from '../observability/access-log.ts';
import { reportScriptError } from '../observability/error-report.ts';
import { observeSession, startRequestTracing, type RequestTracing } from '../observability/request-telemetry.ts';
import { isTargetFailure, mayResend, mayRetry, shouldBufferBody, unansweredTry, type BodyMode } from '../upstream/retry-policy.ts';
import { readReplayBody } from '../upstream/replay-body.ts';

/** Response headers the proxy replaces (its own X-Request-Id) or drops (a 204's length, a body changed by a script). */
const REQUEST_ID = new Set(['x-request-id']);
const CONTENT_LENGTH = new Set(['content-length']);
const ACCEPT_ENCODING = new Set(['accept-encoding']);

/** What an exchange needs from its listener. */
export interface ListenerContext {
  scheme: 'http' | 'https';
  limits: LimitsConfig;
  logger: Logger;
  accessLog: boolean;
  /** Record Prometheus metrics (on when an admin listener exists to scrape them). */
  metrics: boolean;
  /** True while the process drains for shutdown: responses then close their connection. */
  draining: () => boolean;
}

const NO_BODY_STATUS = (s: number) => s === 204 || s === 304 || (s >= 100 && s < 200);
/** undici fails a 204/304 that carries a Content-Length (RFC 9110 §8.6 allows it on a 304) once the head is through. */
const BODILESS_LENGTH_MISMATCH = 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH';
/** The longest delay setTimeout takes (larger ones fire at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Resends of unanswered tries per request: each stale keep-alive connection fails once and is dropped, and an HTTP/2 origin at its keepalive_requests refuses on each of its connections, so the pool may hold many such (nginx goes through all its cached connections the same way). */
const MAX_RESENDS = 32;

/** Methods a route can serve, for `Allow`. */
export const ALLOW = 'GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS';

/** True for a Content-Encoding other than identity. */
function isEncoded(value: string | string[] | undefined): boolean {
  if (value === undefined) return false;
  const v = (Array.isArray(value) ? value.join(',') : value).trim().toLowerCase();
  return v !== '' && v !== 'identity';
}

export class Exchange implements Dispatcher.DispatchHandler {
  readonly #gen: Generation;
  readonly #lc: ListenerContext;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #start = performance.now();
  readonly #expectContinue: boolean;
  #id = '';
  #route: CompiledRoute | undefined;
  #session: ScriptSession | undefined;
  #scripts: RouteScripts | undefined;
  #logger: Logger | undefined;
  #upstream: Upstream | undefined;
  #target: Target | undefined;
  #tried: Set<Target> | undefined;
  /** consistent_hash key of this request (upstream.hashKey). */
  #hashKey: string | undefined;
  /** The request body, when it was small enough to buffer for a retry (retry-policy.ts). */
  #replay: Buffer | undefined;
  #firstTry = -1;
  #retries = 0;
  /** The route's filters ran on a response the proxy made itself (#filterLocal): never twice. */
  #localFiltered = false;
  #clientIp: string | undefined;
  #clientPort: number | undefined;
  /** Resends of unanswered tries so far (retry-policy.ts `mayResend`; at most MAX_RESENDS). */
  #resends = 0;
  #method = '';
  #upstreamPath = '';
  #upstreamHeaders: string[] = [];
  #hasBody = false;
  #body: NodeJS.ReadableStream | undefined;
  #controller: Dispatcher.DispatchController | undefined;
  #status = 0;
  #bytesSent = 0;
  #tDispatch = -1;
  #tConnected = -1;
  #tHeader = -1;
  #tEnd = -1;
  #error: ErrorCode | '' = '';
  #done = false;
  #bodyFilter = false;
  /** The response side of a route with body_filter (scripted-response.ts). */
  #stage: ScriptedResponse | undefined;
  #headOnly = false;
  /** A script changed the method to HEAD: the client, which did not ask for HEAD, gets an empty body with Content-Length 0. */
  #headForGet = false;
  /** The upstream answered 204 or 304: no body follows, whatever its Content-Length says. */
  #bodiless = false;
  #responseHeaders: string[] = [];
  #bodyCounter: BodyCounter | undefined;
  /** The client speaks HTTP/2 (req/res are node's http2 compatibility objects). */
  readonly #h2: boolean;
  /** A gRPC call (HTTP/2, content-type application/grpc): failures are answered with grpc-status. */
  #grpc = false;
  /** gRPC: the response head waits here until the body starts, so a trailers-only answer stays one. */
  #pendingHead: string[] | undefined;
  /** limits.send_timeout while the client is full (cleared by its 'drain' and at the end). */
  #sendTimer: NodeJS.Timeout | undefined;
  /** The running try's timeouts.read timer (armed at onRequestStart, refreshed by each body chunk). */
  #readTimer: NodeJS.Timeout | undefined;
  /** Stops the client_body_timeout watch (body-timeout.ts); undefined when there is none. */
  #stopBodyWatch: (() => void) | undefined;
  /** gRPC: the grpc-timeout timer. */
  #deadline: NodeJS.Timeout | undefined;
  /** The request's trace; undefined unless the config has `tracing:` (observability/request-telemetry.ts). */
  #tracing: RequestTracing | undefined;

  constructor(gen: Generation, lc: ListenerContext, req: IncomingMessage, res: ServerResponse, expectContinue = false) {
    this.#gen = gen;
    this.#lc = lc;
    this.#req = req;
    this.#res = res;
    this.#expectContinue = expectContinue;
    this.#h2 = req.httpVersionMajor === 2;
    // Read now: once the client's socket is gone (a POST whose connection closes after its
    // response), node no longer knows its peer, and the access line is written after that.
    this.#clientIp = req.socket?.remoteAddress;
    this.#clientPort = req.socket?.remotePort;
    gen.acquire();
    if (lc.draining()) res.shouldKeepAlive = false;
    res.once('close', () => this.#finish());
  }

  /**
   * The request's logger for script lines and failures (reqId, route, tenant, the tenant's
   * log_level), made on first use: a pino child costs microseconds and most requests log nothing.
   */
  #requestLogger(): Logger {
    if (this.#logger) return this.#logger;
    const route = this.#route!;
    const level = this.#gen.config.tenants[route.config.tenant]?.log_level;
    this.#logger = this.#lc.logger.child({ reqId: this.#id, route: route.name, tenant: route.config.tenant }, level ? { level } : undefined);
    return this.#logger;
  }

  /** Runs the request up to the upstream dispatch (or a local answer). */
  start(): void {
    try {
      this.#begin();
    } catch (err) {
      this.#fail(err);
    }
  }

  #begin(): void {
    const req = this.#req;
    // Request id, target, Host, route and rewrite/access are shared with WebSocket upgrades (request-prelude.ts).
    const plan = newRequestPlan(req);
    this.#method = plan.method;
    this.#id = plan.id;
    if (this.#gen.config.tracing) this.#tracing = startRequestTracing(this.#gen.config, this.#lc.logger, req, this.#lc.scheme);
    const bad = readRequestHead(plan, req, this.#lc.limits, this.#h2);
    if (bad) return this.#local(bad.status, bad.code, bad.detail);
    // TRACE would reflect the request (cookies, credentials) back: refused, as nginx does.
    if (plan.method === 'TRACE') return this.#local(405, 'PRX_ERR_METHOD_NOT_ALLOWED', 'TRACE is not allowed', ['allow', ALLOW]);
    if (this.#h2) this.#startGrpc();
    const refused = matchRoute(plan, this.#gen.router, req, this.#lc.limits.underscores_in_headers);
    this.#route = plan.route;
    if (refused) return this.#local(refused.status, refused.code, refused.detail);
    const route = plan.route!;
    if (maxForwards(plan.method, req) === 0) {
      // Max-Forwards: 0 makes the proxy the final recipient of an OPTIONS (RFC 9110 §7.6.2): it
      // answers for the route the request matched, with the methods that route takes.
      this.#status = 200;
      const allow = route.methods ? [...route.methods, 'OPTIONS'].filter((m, i, all) => all.indexOf(m) === i).join(', ') : ALLOW;
      this.#bytesSent = sendLocal(this.#res, 200, ['allow', allow, 'x-request-id', this.#id], '', false);
      return;
    }

    const te = req.headers['transfer-encoding'];
    const cl = req.headers['content-length'];
    // HTTP/2 needs neither header for a body: the HEADERS frame says whether one follows.
    this.#hasBody = this.#h2 ? !(req as unknown as { stream: { endAfterHeaders: boolean } }).stream.endAfterHeaders : te !== undefined || (cl !== undefined && cl !== '0');
    // Expect: 100-continue on a request without a body: there is nothing to wait for, so the
    // connection stays open (node closes it after a response sent without a 100, for a body that
    // might still come), as nginx keeps it.
    if (this.#expectContinue && !this.#hasBody) (this.#res as ServerResponse & { _expect_continue?: boolean })._expect_continue = false;
    const maxBody = this.#lc.limits.max_body_size;
    if (maxBody > 0 && cl !== undefined && Number(cl) > maxBody) return this.#local(413, 'PRX_ERR_BODY_TOO_LARGE');
    if (this.#hasBody && !this.#h2 && this.#lc.limits.client_body_timeout > 0) {
      this.#stopBodyWatch = watchBodyProgress(req, this.#lc.limits.client_body_timeout, () => this.#bodyStalled());
    }

    const scripts = this.#gen.scripts?.route(route.index);
    const scriptBody = route.config.script_body;
    if (scripts && scriptBody !== undefined && this.#hasBody && (scripts.has.rewrite || scripts.has.access)) {
      // rewrite/access see the body (route `script_body`): read it whole first, up to the smaller limit.
      const cap = maxBody > 0 ? Math.min(maxBody, scriptBody) : scriptBody;
      const limitName = cap === scriptBody ? `the route's script_body` : 'limits.max_body_size';
      if (cl !== undefined && Number(cl) > cap) return this.#local(413, 'PRX_ERR_BODY_TOO_LARGE', `the request body is larger than ${limitName} (${cap} bytes)`);
      const counter = (this.#bodyCounter = limitBody(req, cap, limitName));
      if (this.#expectContinue) this.#res.writeContinue();
      readReplayBody(counter as unknown as import('node:stream').Readable).then(
        (buf) => {
          this.#replay = buf;
          if (this.#done) return;
          try {
            this.#afterHead(plan, scripts, cl, maxBody);
          } catch (err) {
            this.#fail(err);
          }
        },
        (err) => {
          if (!this.#done) this.#fail(err);
        },
      );
      return;
    }
    this.#afterHead(plan, scripts, cl, maxBody);
  }

  /** The rest of #begin, once the request head is checked (and a `script_body` is read): scripts, then the upstream. */
  #afterHead(plan: RequestPlan, scripts: RouteScripts | undefined, cl: string | undefined, maxBody: number): void {
    const req = this.#req;
    const route = plan.route!;
    if (scripts) {
      this.#scripts = scripts;
      const sreq = scriptRequestOf(plan, req, this.#lc.scheme);
      if (this.#replay && route.config.script_body !== undefined) sreq.body = this.#replay;
      this.#session = scripts.open(sreq, () => this.#requestLogger());
      if (this.#lc.metrics || this.#tracing) this.#session = observeSession(this.#session, scripts.has, route.config.tenant, this.#lc.metrics, this.#tracing);
      const exit = runRequestScripts(scripts, this.#session, sreq, plan);
      if (exit) return this.#exit(exit.status, exit.headers, exit.body);
      this.#method = plan.method;
      this.#bodyFilter = scripts.has.body_filter;
      if (plan.body) {
        // ctx.request.setBody(): this body goes upstream (and on a retry); undici sets its Content-Length.
        this.#replay = plan.body;
        this.#hasBody = true;
        plan.headers = withoutHeaders(plan.headers, CONTENT_LENGTH);
      }
    }

    if (plan.path === '*') {
      // `OPTIONS *` asks about the server itself (RFC 9110 §9.3.7): the proxy answers it.
      this.#status = 200;
      this.#bytesSent = sendLocal(this.#res, 200, ['allow', ALLOW, 'x-request-id', this.#id], '', false);
      return;
    }
    const upstreamName = plan.upstreamName;
    if (upstreamName === undefined) return this.#local(503, 'PRX_ERR_NO_TARGET', 'route has no upstream');
    const upstream = this.#gen.upstreams.get(upstreamName);
    if (!upstream) return this.#local(500, 'PRX_ERR_NO_TARGET', `unknown upstream ${JSON.stringify(upstreamName)}`);
    this.#upstream = upstream;
    const path = plan.path;
    this.#upstreamPath = plan.query ? `${path}?${plan.query}` : path;
    const via = this.#gen.config.via;
    // body_filter reads text: the client's Accept-Encoding does not go upstream, so the origin
    // answers uncompressed (nginx users write `proxy_set_header Accept-Encoding ""` for this).
    // One a script set itself goes.
    if (this.#bodyFilter && req.headers['accept-encoding'] !== undefined && headerIn(plan.headers, 'accept-encoding') === req.headers['accept-encoding']) plan.headers = withoutHeaders(plan.headers, ACCEPT_ENCODING);
    this.#upstreamHeaders = upstreamHeaders(plan, this.#clientIp ?? '', this.#lc.scheme, via && viaEntry(req.httpVersion, via), req.socket.localPort);
    if (this.#grpc) this.#upstreamHeaders.push('te', 'trailers'); // gRPC servers expect it
    if (this.#tracing) this.#tracing.upstreamHeaders(this.#upstreamHeaders);
    this.#headOnly = this.#method === 'HEAD';
    // A script made the request a HEAD: the origin's answer has no body, whatever length it names.
    this.#headForGet = this.#headOnly && req.method !== 'HEAD';
    if (this.#hasBody && !this.#replay) {
      // Chunked bodies (and every body under a size limit) go through a counter; Content-Length ones are counted by the header.
      if (maxBody > 0 || cl === undefined) this.#body = this.#bodyCounter = limitBody(req, maxBody);
      else {
        // As in limitBody: undici destroys the body with the try's error; never an unhandled 'error'.
        req.on('error', ignoreError);
        this.#body = req;
      }
      if (this.#expectContinue) this.#res.writeContinue();
    }
    this.#hashKey = upstream.hashKey({ headers: this.#upstreamHeaders, clientIp: this.#clientIp ?? '', path });
    if (this.#hasBody && !this.#replay && shouldBufferBody(upstream.config, this.#method, cl)) {
      readReplayBody(this.#body as unknown as import('node:stream').Readable).then(
        (buf) => {
          this.#replay = buf;
          if (!this.#done) this.#dispatch();
        },
        (err) => {
          if (!this.#done) this.#fail(err);
        },
      );
      return;
    }
    this.#dispatch();
  }

  #dispatch(next?: Target): void {
    let target = next;
    if (!target) {
      try {
        target = this.#choose();
      } catch (err) {
        return this.#fail(err);
      }
    }
    if (!target) {
      const up = this.#upstream!;
      return this.#local(503, 'PRX_ERR_NO_TARGET', up.allDown() ? `upstream ${up.name}: every target is unhealthy` : `upstream ${up.name} has no target left`);
    }
    this.#target = target;
    target.inFlight++;
    // A request without Host (HTTP/1.0): the target names itself, as nginx's $proxy_host.
    if (this.#upstreamHeaders[1] === '' && this.#upstreamHeaders[0] === 'host') this.#upstreamHeaders[1] = target.target;
    this.#tDispatch = performance.now();
    if (this.#firstTry < 0) this.#firstTry = this.#tDispatch;
    if (this.#tracing) this.#tracing.upstreamTry(this.#upstreamHeaders, this.#upstream!.name, target.address, this.#retries);
    target.pool.dispatch(
      {
        path: this.#upstreamPath,
        method: this.#method,
        headers: this.#upstreamHeaders,
        // The endpoint's TLS name, not the Host header's (upstream/connector.ts); undici's Request takes it, its types omit it.
        servername: target.servername,
        body: this.#replay ?? (this.#hasBody ? (this.#body as unknown as import('node:stream').Readable) : null),
      } as Dispatcher.DispatchOptions,
      this,
    );
  }

  // ---- undici dispatch handler ----

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    this.#tConnected = performance.now();
    if (this.#done) return controller.abort(new ProxyError('PRX_ERR_CLIENT_ABORTED'));
    // timeouts.read to the millisecond (undici's own timers for it tick every ~0.5 s, a backstop
    // here). It runs from the end of the request: while a client is still uploading, the upstream's
    // wait is the client's slowness (client_body_timeout's business), not the upstream's.
    const req = this.#req;
    if (this.#hasBody && !this.#replay && !req.complete) req.once('end', () => this.#armRead());
    else this.#armRead();
  }

  /** Starts this try's timeouts.read timer once the request is sent, unless the head is already in. */
  #armRead(): void {
    if (!this.#done && this.#tHeader < 0) this.#startReadTimer();
  }

  /** Starts (or restarts) the timeouts.read timer; none when timeouts.read is 0. */
  #startReadTimer(): void {
    const read = this.#upstream!.config.timeouts.read;
    if (read <= 0) return;
    if (this.#readTimer) this.#readTimer.refresh();
    else this.#readTimer = setTimeout(this.#readTimedOut, read);
  }

  /** send_timeout passed with the client taking nothing: the response is cut and the upstream request cancelled. */
  readonly #sendTimedOut = (): void => {
    if (this.#done) return;
    const err = new ProxyError('PRX_ERR_CLIENT_SEND_TIMEOUT', `the client took no response bytes for ${this.#lc.limits.send_timeout} ms (limits.send_timeout)`);
    this.#error = err.code;
    this.#lc.logger.info({ reqId: this.#id, code: err.code }, 'client stopped reading; response cut');
    this.#controller?.abort(err);
    this.#cut();
  };

  /** timeouts.read passed with no response head, or no body bytes since the last ones: 504 (retried like undici's). */
  readonly #readTimedOut = (): void => {
    this.#readTimer = undefined;
    this.#controller?.abort(new ProxyError('PRX_ERR_UPSTREAM_TIMEOUT', `the upstream sent nothing for timeouts.read (${this.#upstream!.config.timeouts.read} ms)`));
  };

  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: Record<string, string | string[] | undefined>, statusMessage?: string): void {
    if (status < 200) return; // interim responses (100, 103) are not forwarded
    if (this.#done) return controller.abort(new ProxyError('PRX_ERR_CLIENT_ABORTED'));
    this.#tHeader = performance.now();
    this.#readTimer?.refresh();
    this.#upstream!.succeeded(this.#target!, this.#tHeader - this.#tDispatch);
    if (this.#lc.metrics) upstreamDuration.observe({ upstream: this.#upstream!.name }, (this.#tHeader - this.#tDispatch) / 1000);
    if (this.#grpc && headers['grpc-status'] === undefined && (status !== 200 || !isGrpcContentType(headers['content-type'] as string | undefined))) {
      // Not a gRPC answer (an HTML error page, a 503 from a load balancer): the client gets a gRPC status instead.
      this.#error = 'PRX_ERR_UPSTREAM_PROTOCOL';
      this.#status = status;
      endGrpc(this.#res, this.#id, grpcStatusForHttp(status), `upstream answered HTTP ${status} without a gRPC status`);
      controller.abort(new ProxyError('PRX_ERR_UPSTREAM_PROTOCOL'));
      return;
    }
    // A transfer coding other than chunked (`gzip, chunked`) would reach the client as coded bytes
    // with nothing naming the coding (Transfer-Encoding is hop-by-hop): a 502, as nginx answers.
    const te = headers['transfer-encoding'];
    if (te !== undefined && String(te).trim().toLowerCase() !== 'chunked') {
      controller.abort(new ProxyError('PRX_ERR_UPSTREAM_PROTOCOL', `upstream sent Transfer-Encoding "${String(te)}": only chunked is understood`));
      return;
    }
    let out = forwardResponseHeaders(headers);
    // X-Request-Id goes back to the client on every response (the upstream's own copy is replaced).
    if (headers['x-request-id'] !== undefined) out = withoutHeaders(out, REQUEST_ID);
    out.push('x-request-id', this.#id);
    const via = this.#gen.config.via;
    if (via) out.push('via', viaEntry(this.#upstream!.config.protocol === 'http2' ? '2.0' : '1.1', via));
    if (this.#headForGet && !NO_BODY_STATUS(status)) out = withoutHeaders(out, CONTENT_LENGTH).concat('content-length', '0');
    if (status === 204 || status === 304) {
      this.#bodiless = true;
      // A 204 never has a Content-Length (RFC 9110 §8.6); a 304's is the selected representation's, kept.
      if (status === 204 && headers['content-length'] !== undefined) out = withoutHeaders(out, CONTENT_LENGTH);
    }
    // gRPC bodies are length-prefixed protobuf frames: body_filter never applies to them.
    if (this.#headOnly || NO_BODY_STATUS(status) || this.#grpc) this.#bodyFilter = false;
    // A compressed body (an origin that compresses unasked) is not text body_filter can read: it
    // passes unchanged, as nginx's sub_filter passes it, rather than be mangled.
    if (this.#bodyFilter && isEncoded(headers['content-encoding'])) this.#bodyFilter = false;
    if (this.#bodyFilter) {
      // header_filter + body_filter go through the stage, which batches them into few crossings.
      if (headers.date !== undefined) this.#res.sendDate = false;
      this.#stage = new ScriptedResponse(this.#session!, this.#stageWriter(controller, status, statusMessage));
      this.#stage.start({ status, headers: out });
      return;
    }
    let outStatus = status;
    let message = statusMessage;
    let scripted = false;
    try {
      if (this.#scripts?.has.header_filter) {
        const head = this.#session!.headerFilter({ status, headers: out });
        if (head) {
          scripted = true;
          // The body goes on unchanged, so its length stays the upstream's (none for a 204 the script made).
          const length = head.status === 204 ? undefined : this.#headForGet ? '0' : (headers['content-length'] as string | undefined);
          out = scriptFramedHeaders(head.headers, length);
          if (head.status !== status) message = undefined;
          outStatus = head.status;
        }
      }
    } catch (err) {
      controller.abort(err as Error);
      return;
    }
    const res = this.#res;
    if (headers.date !== undefined) res.sendDate = false;
    if (this.#lc.draining()) res.shouldKeepAlive = false;
    this.#status = outStatus;
    this.#responseHeaders = out;
    if (this.#grpc) {
      this.#pendingHead = out;
      setImmediate(() => this.#flushHead());
      return;
    }
    try {
      if (message && !this.#h2) res.writeHead(outStatus, message, out);
      else res.writeHead(outStatus, out);
    } catch (err) {
      this.#headRefused(controller, err, scripted);
    }
  }

  /**
   * writeHead refused a head (HTTP/2: a single-value field twice; a bad value). Its fields are
   * cleared so the 500/502 can go out on the same response; a head header_filter changed is the
   * script's failure (500), the upstream's own a 502 that counts against the target.
   */
  #headRefused(controller: Dispatcher.DispatchController, err: unknown, scripted: boolean): void {
    const res = this.#res;
    res.sendDate = true;
    clearHeaders(res);
    const why = (err as Error).message;
    controller.abort(scripted ? new ProxyError('PRX_ERR_SCRIPT_RESULT', `header_filter script returned a head that cannot be sent: ${why}`) : new ProxyError('PRX_ERR_UPSTREAM_PROTOCOL', `invalid response head: ${why}`));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#readTimer?.refresh();
    if (this.#done) return;
    if (this.#stage) return this.#stage.data(chunk);
    if (this.#pendingHead) this.#flushHead();
    this.#writeBody(controller, chunk);
  }


  onResponseEnd(controller: Dispatcher.DispatchController, parsedTrailers?: Record<string, string | string[] | undefined>): void {
    this.#tEnd = performance.now();
    if (this.#tracing) this.#tracing.upstreamDone(this.#status);
    const trailers = upstreamTrailers(controller, parsedTrailers);
    this.#releaseTarget();
    if (this.#done || this.#res.writableEnded) return;
    if (this.#stage) return this.#stage.end();
    if (this.#pendingHead) {
      // gRPC trailers-only answer (status in the head, no body): send it on as one HEADERS frame.
      const head = this.#pendingHead.concat(trailers ? forwardResponseHeaders(trailers) : []);
      this.#pendingHead = undefined;
      sendTrailersOnly(this.#res, this.#status, head);
      return;
    }
    if (this.#pendingHead) this.#flushHead();
    if (trailers && this.#acceptsTrailers()) {
      for (const k in trailers) {
        // Trailers go to HTTP/2 clients, and to HTTP/1.1 ones that asked (TE: trailers) on a chunked response.
        this.#res.addTrailers(trailers as Record<string, string>);
        break;
      }
    }
    this.#res.end();
  }

  /** The exchange side of a ScriptedResponse: how its head, body and failures reach the client. */
  #stageWriter(controller: Dispatcher.DispatchController, upstreamStatus: number, statusMessage: string | undefined): ResponseWriter {
    return {
      head: (head, changed) => {
        const res = this.#res;
        // body_filter may change the body: it goes chunked (HTTP/1.1) or close-delimited, never with a length.
        const out = scriptFramedHeaders(head.headers, undefined);
        if (this.#lc.draining()) res.shouldKeepAlive = false;
        this.#status = head.status;
        this.#responseHeaders = out;
        try {
          if (statusMessage && !changed && head.status === upstreamStatus && !this.#h2) res.writeHead(head.status, statusMessage, out);
          else res.writeHead(head.status, out);
          return true;
        } catch (err) {
          this.#headRefused(controller, err, changed);
          return false;
        }
      },
      write: (data) => this.#writeBody(controller, data),
      end: () => this.#res.end(),
      fail: (err) => {
        this.#error = isProxyError(err) ? err.code : 'PRX_ERR_SCRIPT';
        controller.abort(err as Error);
        if (this.#res.headersSent) {
          this.#logScriptError(err);
          this.#cut();
        } else this.#fail(err);
      },
    };
  }

  /** Writes body bytes to the client, corked per tick, pausing the upstream while the client is full. */
  #writeBody(controller: Dispatcher.DispatchController, data: Buffer): void {
    // A status a script made bodiless (header_filter's 204/304): the upstream's body is read and
    // dropped, and not counted as sent (node would drop it too, silently).
    if (this.#status === 204 || this.#status === 304) return;
    this.#bytesSent += data.length;
    const res = this.#res;
    // Chunks and the end that undici parses from one socket read arrive in the same tick: cork so
    // they leave in one writev (head + body + chunked terminator) instead of one syscall each.
    if (!res.writableCorked) {
      res.cork();
      process.nextTick(uncork, res);
    }
    if (!res.write(data)) {
      controller.pause();
      // While the client is full the upstream is not read: that wait is not the upstream's silence,
      // it is the client's, which send_timeout bounds.
      if (this.#readTimer) {
        clearTimeout(this.#readTimer);
        this.#readTimer = undefined;
      }
      const send = this.#lc.limits.send_timeout;
      if (send > 0) {
        if (this.#sendTimer) this.#sendTimer.refresh();
        else this.#sendTimer = setTimeout(this.#sendTimedOut, send);
      }
      res.once('drain', () => {
        if (this.#sendTimer) {
          clearTimeout(this.#sendTimer);
          this.#sendTimer = undefined;
        }
        if (!this.#done && this.#tEnd < 0) this.#startReadTimer();
        controller.resume();
      });
    }
  }

  #acceptsTrailers(): boolean {
    return this.#h2 || /\btrailers\b/i.test(String(this.#req.headers.te ?? ''));
  }

  /** Sends a held gRPC response head (the body is starting, or it is time). */
  #flushHead(): void {
    const head = this.#pendingHead;
    if (!head || this.#done || this.#res.headersSent) return;
    this.#pendingHead = undefined;
    this.#res.writeHead(this.#status, head);
  }

  /** Recognises a gRPC call and starts its deadline (grpc-timeout) timer. */
  #startGrpc(): void {
    const req = this.#req;
    if (!isGrpcContentType(req.headers['content-type'])) return;
    this.#grpc = true;
    const ms = parseGrpcTimeout(req.headers['grpc-timeout']);
    // A deadline beyond what a timer holds (2^31 ms, about 24.8 days; a timer would fire at once) is no deadline here.
    if (ms !== undefined && ms < MAX_TIMER_MS) this.#deadline = setTimeout(() => this.#deadlinePassed(), ms);
  }

  /** grpc-timeout passed: the client gets DEADLINE_EXCEEDED and the upstream stream is cancelled. */
  #deadlinePassed(): void {
    if (this.#done || this.#res.writableEnded) return;
    this.#error = 'PRX_ERR_DEADLINE';
    this.#pendingHead = undefined;
    this.#status ||= 504;
    endGrpc(this.#res, this.#id, grpcStatusForError('PRX_ERR_DEADLINE'), 'deadline exceeded (grpc-timeout) at the proxy');
    this.#controller?.abort(new ProxyError('PRX_ERR_DEADLINE'));
  }

  onResponseError(controller: Dispatcher.DispatchController, err: Error): void {
    if (this.#bodiless && this.#res.headersSent && (err as { code?: string }).code === BODILESS_LENGTH_MISMATCH) {
      // The 204/304 is whole: its head was all there was to forward.
      return this.onResponseEnd(controller, undefined);
    }
    this.#releaseTarget();
    if (this.#done || this.#res.writableEnded) return;
    if (this.#resends < MAX_RESENDS && !this.#res.headersSent && mayResend(unansweredTry(err), this.#method, this.#bodyMode())) {
      // Not answered and harmless to repeat (a refused stream, a keep-alive connection the origin
      // had just closed): sent again to the same target, which may take another idle connection
      // that closed the same way, so a few times, like nginx over its cached connections.
      this.#resends++;
      this.#lc.logger.info({ reqId: this.#id, upstream: this.#upstream!.name, target: this.#target!.address, err: err.message }, 'upstream try not answered; sent again on a new connection');
      return this.#dispatch(this.#target);
    }
    const mapped = isProxyError(err) ? err : mapUpstreamError(err);
    if (this.#tracing) this.#tracing.upstreamDone(0, mapped.code);
    if (this.#lc.metrics && mapped.source === 'upstream') upstreamFailures.inc({ upstream: this.#upstream!.name, code: mapped.code });
    if (isTargetFailure(mapped.code)) this.#upstream!.failed(this.#target!, mapped.code);
    if (!this.#res.headersSent) {
      let next: Target | undefined;
      try {
        next = this.#retryTarget(mapped);
      } catch (e) {
        return this.#fail(e);
      }
      if (next) {
        this.#lc.logger.warn({ reqId: this.#id, upstream: this.#upstream!.name, target: this.#target!.address, next: next.address, err: mapped.message, code: mapped.code }, 'upstream try failed, retrying another target');
        if (this.#lc.metrics) upstreamRetries.inc({ upstream: this.#upstream!.name });
        return this.#dispatch(next);
      }
      return this.#fail(mapped);
    }
    // The response already started: abort it so the client never takes a cut body as whole
    // (a gRPC client gets the failure as its status instead).
    this.#error = mapped.code;
    if (mapped.source === 'script') this.#logScriptError(mapped);
    if (this.#grpc) return endGrpc(this.#res, this.#id, grpcStatusForError(mapped.code), mapped.message);
    this.#lc.logger.warn({ reqId: this.#id, upstream: this.#upstream?.name, target: this.#target?.address, err: mapped.message, code: mapped.code }, 'upstream failed mid-response; client response aborted');
    this.#cut();
  }

  /**
   * Aborts a response that already started, so the client never takes a cut body as whole: the
   * HTTP/1 connection is destroyed; an HTTP/2 stream is reset with INTERNAL_ERROR (a bare destroy
   * resets it with NO_ERROR, which clients read as a complete response).
   */
  #cut(): void {
    const stream = this.#h2 ? (this.#res as unknown as { stream?: { close(code: number): void; destroyed: boolean } }).stream : undefined;
    if (stream && !stream.destroyed) stream.close(http2Constants.NGHTTP2_INTERNAL_ERROR);
    else this.#res.destroy();
  }

  /** How the request body travels to the upstream: none, buffered for replay, or streamed once. */
  #bodyMode(): BodyMode {
    return this.#replay ? 'buffered' : this.#hasBody ? 'streamed' : 'none';
  }

  /** Another target for a failed try, when the retry policy allows one (upstream/retry-policy.ts). */
  #retryTarget(err: ProxyError): Target | undefined {
    const up = this.#upstream!;
    const body = this.#bodyMode();
    if (!mayRetry(up.config, { code: err.code, method: this.#method, body, retriesSoFar: this.#retries, elapsedMs: performance.now() - this.#firstTry })) return undefined;
    (this.#tried ??= new Set()).add(this.#target!);
    // `tries` counts this retry for balancer_by_script; the request's count only when one is made.
    this.#retries++;
    const next = this.#choose(err);
    if (!next) this.#retries--;
    return next;
  }

  /**
   * The target of the next try: balancer_by_script's choice when the route has one (called again
   * with the failure on a retry; it may switch upstream), else the upstream's own algorithm.
   * Throws a script error, or PRX_ERR_SCRIPT_RESULT for a choice that is not a configured target.
   */
  #choose(failure?: ProxyError): Target | undefined {
    const up = this.#upstream!;
    const choice = this.#scripts?.has.balancer
      ? this.#session!.balancer?.({
          upstream: up.name,
          targets: up.status().targets,
          tries: this.#retries,
          ...(failure && this.#target ? { failure: { code: failure.code, address: this.#target.address } } : {}),
        })
      : undefined;
    if (!choice) return up.pick(this.#tried, this.#hashKey);
    let chosen = up;
    if (choice.upstream !== undefined && choice.upstream !== up.name) {
      const other = this.#gen.upstreams.get(choice.upstream);
      if (!other) throw new ProxyError('PRX_ERR_SCRIPT_RESULT', `balancer_by_script chose unknown upstream ${JSON.stringify(choice.upstream)}`);
      this.#upstream = chosen = other;
    }
    if (choice.address === undefined) return chosen.pick(this.#tried, choice.hashKey ?? this.#hashKey);
    const t = chosen.targets.find((x) => x.address === choice.address || x.target === choice.address);
    if (!t) throw new ProxyError('PRX_ERR_SCRIPT_RESULT', `balancer_by_script picked ${JSON.stringify(choice.address)}, which is not a target of upstream ${chosen.name}`);
    return t;
  }

  #releaseTarget(): void {
    if (this.#readTimer) {
      clearTimeout(this.#readTimer);
      this.#readTimer = undefined;
    }
    if (this.#target) {
      this.#target.inFlight--;
      this.#target = this.#target; // kept for the log line
    }
  }

  // ---- local answers and failures ----

  #exit(status: number, headers: string[], body: string | Uint8Array): void {
    this.#status = status;
    if (status === 444) {
      // nginx's 444: close the connection without a response (an HTTP/2 stream is reset).
      this.#error = 'PRX_ERR_CLOSED_BY_SCRIPT';
      return this.#cut();
    }
    if (this.#grpc && status !== 200 && !headers.includes('grpc-status')) {
      return endGrpc(this.#res, this.#id, grpcStatusForHttp(status), typeof body === 'string' ? body.trim() : `HTTP ${status}`);
    }
    let out = headers.includes('x-request-id') ? headers : headers.concat('x-request-id', this.#id);
    let reply: string | Uint8Array = body;
    // header_filter and body_filter see an exit's response too, as OpenResty's filters see ngx.exit's.
    try {
      const filtered = this.#filterLocal(status, out, body);
      if (filtered) ({ status, headers: out, body: reply } = filtered);
    } catch (err) {
      return this.#fail(err);
    }
    this.#status = status;
    try {
      this.#bytesSent = sendLocal(this.#res, status, out, reply, this.#method === 'HEAD');
      this.#responseHeaders = out;
    } catch (err) {
      // The script's head cannot be sent (an HTTP/2 single-value field given twice): its failure, a 500.
      this.#fail(err);
    }
  }

  /**
   * A response the proxy makes itself (an exit, a redirect, a 502/503/504 after routing) through
   * the route's header_filter and body_filter, once per request, as OpenResty runs its filters on
   * ngx.exit and error pages: CORS or security headers reach a 401 or a 502 too. Undefined when
   * the route has neither (or they ran already); throws the script's error when one fails.
   */
  #filterLocal(status: number, headers: string[], body: string | Uint8Array): { status: number; headers: string[]; body: Buffer } | undefined {
    const scripts = this.#scripts;
    const session = this.#session;
    if (!scripts || !session || this.#localFiltered || (!scripts.has.header_filter && !scripts.has.body_filter)) return undefined;
    this.#localFiltered = true;
    const bytes = typeof body === 'string' ? Buffer.from(body) : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    const head: ResponseHead = { status, headers };
    let next: ResponseHead | undefined;
    let out: Buffer | undefined;
    if (session.responseStart) ({ head: next, body: out } = session.responseStart(head, bytes, true));
    else {
      next = session.headerFilter(head);
      if (scripts.has.body_filter) out = session.bodyFilter(bytes, true);
    }
    return { status: next?.status ?? status, headers: next?.headers ?? headers, body: out ?? bytes };
  }

  #local(status: number, code: ErrorCode, detail?: string, extraHeaders: string[] = []): void {
    this.#status = status;
    if (status >= 400) this.#error = code;
    // A malformed or refused request (and any unread body behind it) ends the connection, like nginx.
    if (status === 400 || status === 408 || status === 413 || status === 414 || status === 501) this.#res.shouldKeepAlive = false;
    const spec = ERRORS[code];
    if (this.#grpc) return endGrpc(this.#res, this.#id, grpcStatusForError(code), detail ?? spec.meaning);
    let body: string | Buffer = `${status} ${detail ?? spec.meaning}\n`;
    let headers = ['content-type', 'text/plain; charset=utf-8', 'x-request-id', this.#id || '-', ...extraHeaders];
    // The route's filters see the proxy's own error responses too, unless a script is what failed
    // (or its tenant is over budget): those scripts are not run again.
    if (spec.source !== 'script') {
      try {
        const filtered = this.#filterLocal(status, headers, body);
        if (filtered) {
          ({ status, headers, body } = filtered);
          this.#status = status;
        }
      } catch (err) {
        this.#logScriptError(err);
      }
    }
    try {
      this.#bytesSent = sendLocal(this.#res, status, headers, body, this.#method === 'HEAD');
      this.#responseHeaders = headers;
    } catch {
      this.#res.destroy();
    }
  }

  /** client_body_timeout passed with no body bytes: 408 (or a cut response), the upstream try aborted. */
  #bodyStalled(): void {
    if (this.#done) return;
    const err = new ProxyError('PRX_ERR_CLIENT_BODY_TIMEOUT', `no request body bytes for ${this.#lc.limits.client_body_timeout} ms (limits.client_body_timeout)`);
    this.#controller?.abort(err);
    this.#res.shouldKeepAlive = false;
    this.#fail(err);
  }

  #fail(err: unknown): void {
    const e = isProxyError(err) ? err : new ProxyError('PRX_ERR_INTERNAL', (err as Error)?.message ?? String(err), { cause: err });
    if (e.source === 'script') this.#logScriptError(e);
    else if (e.code === 'PRX_ERR_INTERNAL') this.#lc.logger.error({ reqId: this.#id, err }, 'internal error');
    else this.#lc.logger.warn({ reqId: this.#id, upstream: this.#upstream?.name, target: this.#target?.address, code: e.code, err: e.message }, 'request failed');
    this.#error = e.code;
    if (this.#res.headersSent) {
      if (this.#grpc && !this.#res.writableEnded) return endGrpc(this.#res, this.#id, grpcStatusForError(e.code), e.message);
      this.#cut();
      return;
    }
    // A refusal of the client's own request says why (which limit); other failures stay generic.
    // A throttled tenant is told as such; a script's own failure stays "script error" (its details are in the log).
    this.#local(e.status, e.code, e.code === 'PRX_ERR_TENANT_THROTTLED' ? e.message : e.source === 'script' ? 'script error' : e.source === 'downstream' ? e.message : undefined);
  }

  #logScriptError(err: unknown): void {
    const e = err as ProxyError;
    // Throttling is no script failure (no script ran): the tenant's own warning (once per episode),
    // scriptgate_tenant_throttled_total and the access line's error say it, not one line per request.
    if (e.code === 'PRX_ERR_TENANT_THROTTLED') return;
    if (this.#lc.metrics) scriptErrors.inc({ tenant: this.#route?.config.tenant ?? 'default', code: e.code ?? 'PRX_ERR_SCRIPT' });
    reportScriptError(e, { route: this.#route?.name, tenant: this.#route?.config.tenant, reqId: this.#id });
    // The request logger already carries reqId (a key written twice makes the JSON line ambiguous).
    if (this.#route) this.#requestLogger().error({ code: e.code, err: e.message }, 'script failed');
    else this.#lc.logger.error({ reqId: this.#id, code: e.code, err: e.message }, 'script failed');
  }

  // ---- the end ----

  /** Writes the access line through the configured sink and fields. */
  #accessLog(opts: Generation['config']['log']['access_log_options'], facts: AccessFacts, bytesIn: number): void {
    const req = this.#req;
    writeAccessLine(opts, this.#lc.logger, this.#gen.file, facts, () => ({
      bytesIn,
      tenant: this.#route?.config.tenant,
      clientIp: this.#clientIp,
      clientPort: this.#clientPort,
      ...requestExtras(req, this.#lc.scheme),
      responseHeaders: this.#responseHeaders,
      upstreamMs: this.#tHeader >= 0 ? this.#tHeader - this.#tDispatch : -1,
      retries: this.#retries,
      traceId: this.#tracing?.traceId,
      generation: this.#gen.id,
    }));
  }

  /** Runs once when the client's response is closed (finished, aborted or destroyed). */
  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#deadline) clearTimeout(this.#deadline);
    this.#stopBodyWatch?.();
    if (this.#readTimer) clearTimeout(this.#readTimer);
    if (this.#sendTimer) clearTimeout(this.#sendTimer);
    const res = this.#res;
    // node's HTTP/2 response reads writableFinished true after a RST_STREAM too; writableEnded tells.
    const aborted = !res.writableFinished || !res.writableEnded;
    if (aborted) {
      if (!this.#error) this.#error = 'PRX_ERR_CLIENT_ABORTED';
      this.#controller?.abort(new ProxyError('PRX_ERR_CLIENT_ABORTED'));
    }
    const now = performance.now();
    const total = now - this.#start;
    const status = this.#status || (aborted ? 499 : res.statusCode);
    const bytesIn = !this.#hasBody ? 0 : this.#bodyCounter ? this.#bodyCounter.bytes : Number(this.#req.headers['content-length'] ?? 0);
    if (this.#tracing) this.#tracing.finish(this.#req.method ?? '', this.#route?.name, status, this.#error);
    if (this.#session) {
      const session = this.#session;
      if (this.#scripts!.has.log) {
        session.log({
          status,
          bytesSent: this.#bytesSent,
          bytesReceived: bytesIn,
          timings: {
            total,
            upstreamConnect: this.#tConnected >= 0 ? this.#tConnected - this.#tDispatch : -1,
            upstreamHeader: this.#tHeader >= 0 ? this.#tHeader - this.#tDispatch : -1,
            upstreamBody: this.#tEnd >= 0 && this.#tHeader >= 0 ? this.#tEnd - this.#tHeader : -1,
          },
          upstreamAddress: this.#target?.address ?? '',
          responseHeaders: this.#responseHeaders,
          error: this.#error,
        });
      }
      session.close();
    }
    if (this.#lc.metrics) {
      // "aborted" is the client's doing (it left, or was cut off for its own slowness); a response
      // cut because the upstream or the proxy failed counts under its error's status (5xx).
      const cause = this.#error ? ERRORS[this.#error] : undefined;
      const byClient = aborted && (!cause || cause.source === 'downstream');
      const counted = aborted && !byClient ? cause!.status : status;
      recordRequest(this.#route?.name ?? '', this.#req.method ?? '', counted, byClient, total / 1000, this.#bytesSent, bytesIn);
    }
    if (this.#lc.accessLog) {
      const facts: AccessFacts = {
        reqId: this.#id,
        method: this.#req.method,
        path: this.#req.url,
        status,
        bytes: this.#bytesSent,
        ms: Math.round(total * 1000) / 1000,
        route: this.#route?.name,
        upstream: this.#target?.address,
        ...(this.#error ? { error: this.#error } : {}),
      };
      // log.access_log's fields/file/syslog (observability/access-log.ts); the plain line otherwise.
      this.#accessLog(this.#gen.config.log.access_log_options, facts, bytesIn);
    }
    this.#gen.release();
  }
}

/**
 * The upstream response's trailers. undici 7 passes HTTP/2 trailers through its HTTP/1 header
 * parser, which turns node's trailers object into `{}`; the object itself is on the controller.
 */
function upstreamTrailers(controller: Dispatcher.DispatchController, parsed: Record<string, string | string[] | undefined> | undefined): Record<string, string | string[] | undefined> | undefined {
  const raw = (controller as { rawTrailers?: unknown }).rawTrailers;
  if (raw && typeof raw === 'object' && !Array.isArray(raw)) return raw as Record<string, string | string[] | undefined>;
  return parsed;
}

function uncork(res: ServerResponse): void {
  res.uncork();
}
