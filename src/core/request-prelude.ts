/**
 * The request-phase part of proxying, shared by every kind of HTTP request: plain exchanges
 * (exchange.ts) and WebSocket/Upgrade requests (websocket.ts). Runs once per request, in this order:
 *
 *   readRequestHead()    URI length, request target, Host, Transfer-Encoding    → a refusal or nothing
 *   matchRoute()         router + prefix-escape check                           → a refusal or nothing
 *   runRequestScripts()  rewrite + access (one crossing) on the route's scripts → an exit or nothing
 *   upstreamHeaders()    the header list that goes upstream (Host, X-Forwarded-*, X-Request-Id)
 *
 * Each step fills a `RequestPlan` the caller owns, so whatever the caller opened (a script
 * session) is in its hands on every early return or throw. A refusal is an answer the caller
 * sends itself (`status`, error code, optional detail); a script's throw propagates as a ProxyError.
 *
 * @example
 *   const plan = newRequestPlan(req);
 *   const bad = readRequestHead(plan, req, limits, false) ?? matchRoute(plan, gen.router);
 *   if (bad) return answer(bad.status, bad.code, bad.detail);
 */
import { randomUUID } from 'node:crypto';
import { METHODS, type IncomingMessage } from 'node:http';
import type { ErrorCode } from '../errors.ts';
import type { LimitsConfig } from '../config/schema.ts';
import type { RequestPhasesResult, RouteScripts, ScriptRequest, ScriptSession } from '../phases/contract.ts';
import { forwardRawHeaders, headerIn, scriptFramedHeaders } from './hop-by-hop.ts';
import { requestTlsRecord } from './tls-facts.ts';
import { parseRequestTarget, routingPath, type RequestTarget } from './request-target.ts';
import { hostName, type CompiledRoute, type Router } from './router.ts';

/** What the request-phase steps found and decided; fields fill in as the steps run. */
export interface RequestPlan {
  /** X-Request-Id: the client's when valid, else a new UUID. */
  id: string;
  /** The method (a script may change it). */
  method: string;
  target: RequestTarget;
  /** The Host the client asked for (an absolute-form target's authority wins). */
  hostHeader: string;
  route: CompiledRoute | undefined;
  /** Path, query and end-to-end headers as they go upstream (scripts may change them). */
  path: string;
  query: string;
  headers: string[];
  /** The upstream's name: the route's, or a script's choice. */
  upstreamName: string | undefined;
  /** A body a script set (ctx.request.setBody) to send instead of the client's. */
  body?: Buffer;
}

/** A request the proxy answers itself instead of routing it. */
export interface Refusal {
  status: number;
  code: ErrorCode;
  detail?: string;
}

export type ScriptExit = Extract<RequestPhasesResult, { action: 'exit' }>;

/** Headers the proxy sets itself upstream; incoming copies are dropped (XFF is appended to). */
const PROXY_SET = new Set(['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'expect']);
/**
 * Underscore spellings of the headers the proxy sets (`X_Forwarded_Proto`): CGI/WSGI frameworks
 * read `_` and `-` alike (both become HTTP_X_FORWARDED_PROTO), so a client's copy would sit beside
 * the proxy's value and could win. Dropped, as nginx drops every name with `_` by default.
 */
const PROXY_SET_UNDERSCORED = new Set(['x_forwarded_for', 'x_forwarded_proto', 'x_forwarded_host', 'x_forwarded_port', 'x_request_id']);
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** The methods node's HTTP/1.1 parser accepts (the same set is enforced for HTTP/2). */
const KNOWN_METHODS: ReadonlySet<string> = new Set(METHODS);
/** A Host value (RFC 9110 §7.2): reg-name or IPv4, or an IPv6 literal, with an optional port. */
const HOST_VALUE = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::\d{0,5})?$/;

/** The request's id: the client's X-Request-Id when it is one valid value (token characters, ≤ 128), else a new UUID. */
export function requestIdOf(req: IncomingMessage): string {
  const rid = req.headers['x-request-id'];
  return typeof rid === 'string' && REQUEST_ID.test(rid) ? rid : randomUUID();
}

/** A fresh plan: the request id and method are known at once (a refusal carries the id too). */
export function newRequestPlan(req: IncomingMessage): RequestPlan {
  return {
    id: requestIdOf(req),
    method: req.method ?? 'GET',
    target: { path: '/', query: '' },
    hostHeader: '',
    route: undefined,
    path: '/',
    query: '',
    headers: [],
    upstreamName: undefined,
  };
}

/**
 * Checks the request line, Host and (HTTP/1) Transfer-Encoding: 414 for a long URI; 400 for a bad
 * target, a bad, empty or repeated Host, or a Transfer-Encoding whose framing cannot be trusted;
 * 501 for a transfer coding other than chunked.
 */
export function readRequestHead(plan: RequestPlan, req: IncomingMessage, limits: LimitsConfig, h2: boolean): Refusal | undefined {
  const url = req.url ?? '/';
  if (url.length > limits.max_uri_size) return { status: 414, code: 'PRX_ERR_URI_TOO_LONG' };
  const target = parseRequestTarget(url, plan.method);
  if (!target) return { status: 400, code: 'PRX_ERR_BAD_REQUEST', detail: 'bad request target' };
  // RFC 9112 §3.2: more than one Host is a 400 (node keeps the first; an upstream might read the last).
  const raw = req.rawHeaders;
  let hosts = 0;
  let te: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++;
    else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') te = te === undefined ? raw[i + 1]! : `${te},${raw[i + 1]!}`;
  }
  if (hosts > 1) return { status: 400, code: 'PRX_ERR_BAD_REQUEST', detail: 'more than one Host header' };
  // HTTP/2 takes any token as :method; HTTP/1.1's parser takes only the methods it knows, upper
  // case. The same set for both, so routes' `methods` and scripts see one rule whatever the protocol.
  if (h2 && !KNOWN_METHODS.has(plan.method)) {
    return /^[A-Z_-]{1,32}$/.test(plan.method)
      ? { status: 501, code: 'PRX_ERR_NOT_IMPLEMENTED', detail: 'unknown method' }
      : { status: 400, code: 'PRX_ERR_BAD_REQUEST', detail: 'invalid method' };
  }
  // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400.
  if (hosts === 0 && !h2 && req.httpVersionMinor >= 1) return { status: 400, code: 'PRX_ERR_BAD_REQUEST', detail: 'no Host header' };
  // node's maxHeaderSize counts names and values only; max_header_size is the head as sent (line, ": ", CRLFs).
  if ((h2 ? headerListSize(req) : headSize(req)) > limits.max_header_size) return { status: 431, code: 'PRX_ERR_HEADERS_TOO_LARGE' };
  if (te !== undefined && !h2) {
    const bad = checkTransferEncoding(te, req.httpVersionMinor);
    if (bad) return bad;
  }
  // HTTP/2: :authority names the target; a Host that says otherwise makes the request malformed (RFC 9113 §8.3.1).
  const authority = h2 ? (req.headers[':authority'] as string | undefined) : undefined;
  const host = req.headers.host;
  if (authority !== undefined && host !== undefined && host.toLowerCase() !== authority.toLowerCase()) return { status: 400, code: 'PRX_ERR_BAD_REQUEST', detail: 'Host and :authority differ' };
  const hostHeader = target.authority ?? authority ?? host ?? '';
  if (!HOST_VALUE.test(hostHeader)) return { status: 400, code: 'PRX_ERR_BAD_REQUEST', detail: 'invalid Host header' };
  // A Host that is there but empty names no authority, which an http(s) URI must have (RFC 9110 §4.2.1; nginx: 400).
  if (hostHeader === '' && hosts > 0) return { status: 400, code: 'PRX_ERR_BAD_REQUEST', detail: 'empty Host header' };
  plan.target = target;
  plan.hostHeader = hostHeader;
  plan.path = target.path;
  plan.query = target.query;
  return undefined;
}

/**
 * Bytes of an HTTP/1 request head as the client sent it: request line, each `name: value` line and
 * CRLFs. The space after a colon is optional and not known here; it is counted, as nearly every
 * client sends it (a head of many short lines without it reads up to one byte per line larger).
 */
function headSize(req: IncomingMessage): number {
  let n = (req.method?.length ?? 0) + (req.url?.length ?? 0) + 12;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) n += raw[i]!.length + raw[i + 1]!.length + 4;
  return n + 2;
}

/**
 * An HTTP/2 request's header list size as RFC 9113 §6.5.2 counts it (SETTINGS_MAX_HEADER_LIST_SIZE):
 * each field's name and value (pseudo-headers included) plus 32 octets.
 */
function headerListSize(req: IncomingMessage): number {
  let n = 0;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) n += raw[i]!.length + raw[i + 1]!.length + 32;
  return n;
}

/**
 * RFC 9112 §6.1/§6.3 on a request's Transfer-Encoding (node's parser already refuses it together
 * with Content-Length): from HTTP/1.0 it cannot be trusted (400); `chunked` must come last, else
 * the body's end is unknown (400); any other coding before it would be lost on the way upstream,
 * which re-frames the body itself, so it is not implemented (501, as nginx).
 */
function checkTransferEncoding(te: string, minor: number): Refusal | undefined {
  if (minor === 0) return { status: 400, code: 'PRX_ERR_BAD_REQUEST', detail: 'Transfer-Encoding in an HTTP/1.0 request' };
  const codings = te.split(',').map((c) => c.trim().toLowerCase());
  if (codings[codings.length - 1] !== 'chunked') return { status: 400, code: 'PRX_ERR_BAD_REQUEST', detail: 'chunked is not the final transfer coding' };
  if (codings.length > 1) return { status: 501, code: 'PRX_ERR_NOT_IMPLEMENTED', detail: 'transfer codings other than chunked are not implemented' };
  return undefined;
}

/**
 * Finds the route and takes the request's end-to-end headers. Routes match on the path's strictest
 * reading (`routingPath`: `/%2Fadmin/x` and `/x/..%2Fadmin/x` are under `/admin/`), so an upstream
 * that decodes more than the proxy cannot be reached past a route's scripts. 404 without a route;
 * 400 when that reading climbs above the root, or when the path as sent would match another route
 * than its strict reading does (the two readings disagree on whose rules apply).
 */
export function matchRoute(plan: RequestPlan, router: Router, req: IncomingMessage, keepUnderscores = false): Refusal | undefined {
  const target = plan.target;
  const host = hostName(plan.hostHeader);
  const path = target.path === '*' ? '/' : target.path;
  const strict = routingPath(path);
  if (strict === undefined) return { status: 400, code: 'PRX_ERR_BAD_REQUEST', detail: 'path escapes the root when decoded' };
  const route = router.match(host, strict, plan.method);
  if (!route) return { status: 404, code: 'PRX_ERR_NO_ROUTE' };
  if (strict !== path) {
    const literal = router.match(host, path, plan.method);
    if (literal && literal !== route) return { status: 400, code: 'PRX_ERR_BAD_REQUEST', detail: 'path escapes its route when decoded' };
  }
  plan.route = route;
  let headers = forwardRawHeaders(req.rawHeaders);
  if (!keepUnderscores) headers = withoutUnderscoredNames(headers);
  if (req.httpVersionMajor === 2) {
    // HTTP/2 may split Cookie into one field per crumb; HTTP/1.1 wants one field (RFC 9113 §8.2.3).
    joinCookies(headers);
    // Scripts see the target as Host, whichever protocol carried it (nginx builds $host from :authority).
    if (plan.hostHeader && headerIn(headers, 'host') === undefined) headers.unshift('host', plan.hostHeader);
  }
  // An absolute-form target's authority replaces Host (RFC 9112 §3.2.2), for scripts and upstream alike.
  if (target.authority !== undefined) for (let i = 0; i < headers.length; i += 2) if (headers[i] === 'host') headers[i + 1] = target.authority;
  plan.headers = headers;
  plan.upstreamName = route.config.upstream;
  return undefined;
}

/** A flat header list without the fields whose name has an underscore (limits.underscores_in_headers off); the same list when it has none. */
function withoutUnderscoredNames(headers: string[]): string[] {
  let i = 0;
  while (i < headers.length && !headers[i]!.includes('_')) i += 2;
  if (i >= headers.length) return headers;
  const out = headers.slice(0, i);
  for (; i < headers.length; i += 2) if (!headers[i]!.includes('_')) out.push(headers[i]!, headers[i + 1]!);
  return out;
}

/** Joins every `cookie` field of a flat header list into the first, with "; " (in place). */
function joinCookies(headers: string[]): void {
  let first = -1;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== 'cookie') continue;
    if (first < 0) {
      first = i;
      continue;
    }
    headers[first + 1] = `${headers[first + 1]}; ${headers[i + 1]}`;
    headers.splice(i, 2);
    i -= 2;
  }
}

/** The request as scripts see it (call after matchRoute). */
export function scriptRequestOf(plan: RequestPlan, req: IncomingMessage, scheme: 'http' | 'https'): ScriptRequest {
  const route = plan.route!;
  return {
    id: plan.id,
    method: plan.method,
    path: plan.path,
    query: plan.query,
    headers: plan.headers,
    httpVersion: req.httpVersion,
    scheme,
    clientIp: req.socket.remoteAddress ?? '',
    clientPort: req.socket.remotePort ?? 0,
    tls: scheme === 'https' ? requestTlsRecord(req) : '',
    route: route.name,
    tenant: route.config.tenant,
  };
}

/**
 * Runs rewrite + access when the route has either, and applies their changes to `plan`. Returns
 * the script's exit (the caller answers with it and skips the upstream), else undefined. Throws
 * the session's ProxyError when a script fails.
 */
export function runRequestScripts(scripts: RouteScripts, session: ScriptSession, sreq: ScriptRequest, plan: RequestPlan): ScriptExit | undefined {
  if (!scripts.has.rewrite && !scripts.has.access) return undefined;
  const out = session.requestPhases(sreq);
  if (out.action === 'exit') return out;
  if (out.method !== undefined) plan.method = out.method;
  if (out.path !== undefined) plan.path = out.path;
  if (out.query !== undefined) plan.query = out.query;
  // The client's framing stays: a script's Transfer-Encoding, Connection or Content-Length never goes upstream.
  if (out.headers !== undefined) plan.headers = scriptFramedHeaders(out.headers, headerIn(plan.headers, 'content-length'));
  if (out.upstream !== undefined) plan.upstreamName = out.upstream;
  if (out.body !== undefined) plan.body = out.body;
  return undefined;
}

/**
 * `Max-Forwards` of an OPTIONS or TRACE request (RFC 9110 §7.6.2), the only methods it applies to;
 * undefined when absent, malformed, or another method.
 */
export function maxForwards(method: string, req: IncomingMessage): number | undefined {
  if (method !== 'OPTIONS' && method !== 'TRACE') return undefined;
  const v = req.headers['max-forwards'];
  return typeof v === 'string' && /^\d{1,10}$/.test(v) ? Number(v) : undefined;
}

/** A Via entry (RFC 9110 §7.6.3): the protocol a message came in with (`1.0`, `1.1`, `2`) and the proxy's name. */
export function viaEntry(httpVersion: string, name: string): string {
  return `${httpVersion === '2.0' ? '2' : httpVersion} ${name}`;
}

/**
 * The header list that goes upstream: the (possibly script-changed) end-to-end headers, Host
 * (a script's choice, else the route's upstream_host, else the client's; '' when there is none,
 * which the exchange fills with the target per try), X-Forwarded-For/-Proto/-Host/-Port (the port
 * the client connected to, `serverPort`), X-Request-Id, `via` (a Via entry to add after the
 * client's, when on) and Max-Forwards counted down for OPTIONS/TRACE.
 */
export function upstreamHeaders(plan: RequestPlan, clientIp: string, scheme: 'http' | 'https', via?: string, serverPort?: number): string[] {
  const clientHost = plan.hostHeader;
  const headers = plan.headers;
  let host = plan.route!.config.upstream_host ?? clientHost;
  let xff = '';
  const out: string[] = ['host', ''];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (PROXY_SET.has(name)) {
      if (name === 'x-forwarded-for') xff = xff ? `${xff}, ${headers[i + 1]}` : headers[i + 1]!;
      else if (name === 'host' && headers[i + 1] !== clientHost) host = headers[i + 1]!; // set by a script
      continue;
    }
    if (name === 'x-request-id') continue;
    if (name.includes('_') && PROXY_SET_UNDERSCORED.has(name.replace(/-/g, '_'))) continue;
    if (name === 'max-forwards' && (plan.method === 'OPTIONS' || plan.method === 'TRACE') && /^\d{1,10}$/.test(headers[i + 1]!)) {
      out.push(name, String(Math.max(0, Number(headers[i + 1]) - 1)));
      continue;
    }
    out.push(name, headers[i + 1]!);
  }
  out[1] = host;
  if (via) out.push('via', via);
  out.push('x-forwarded-for', xff ? `${xff}, ${clientIp}` : clientIp);
  out.push('x-forwarded-proto', scheme);
  if (clientHost) out.push('x-forwarded-host', clientHost);
  if (serverPort) out.push('x-forwarded-port', String(serverPort));
  out.push('x-request-id', plan.id);
  return out;
}
