/**
 * Runs inside the isolate: the `ctx` object a phase script receives (one per request, shared by its
 * phases, created on first use) and the `ctx.request` / `ctx.response` views. Every member checks
 * the running phase, mirroring the per-phase types of runtime-api: e.g. `ctx.exit()` only in
 * rewrite/access, `ctx.response` only from header_filter on, setters of the request only in
 * rewrite/access. Internals live in private fields, out of a script's reach.
 */
import * as check from './validate.ts';
import { HeaderList } from './header-list.ts';
import { PHASE_NAMES } from '../wire.ts';
import { allow, currentPhase, ANY_PHASE, BALANCER, HEADER_FILTER, LOG, REQUEST_PHASES, RESPONSE_PHASES } from './phase-guard.ts';
import { currentBalancer, type BalancerView } from './balancer-view.ts';
import { scriptLog } from './log-buffer.ts';
import { sharedDict, type SharedStore } from './shared-dict.ts';
import type { ClientCertificate, RequestBody, TlsInfo } from '../../../runtime-api/index.d.ts';
import { utf8Decode } from './web-globals.ts';
import { latin1, latin1Bytes, utf8Latin1 } from './bytes.ts';
import { scriptCrypto } from './script-crypto.ts';
import {
  CHANGED_METHOD,
  CHANGED_PATH,
  CHANGED_QUERY,
  CHANGED_UPSTREAM,
  ResponseHeadState,
  responseFromRecord,
  type RequestState,
} from './request-state.ts';

/** Tenant-wide facts the ctx needs: its name and the upstreams a script may choose. */
export interface TenantFacts {
  name: string;
  upstreams: ReadonlySet<string>;
  /** The tenant's config `env` (frozen). */
  env: Readonly<Record<string, string>>;
}

class RequestView {
  #s: RequestState;
  constructor(s: RequestState) {
    this.#s = s;
  }
  get method(): string {
    return this.#s.method;
  }
  set method(v: string) {
    allow(REQUEST_PHASES, 'setting ctx.request.method');
    this.#s.method = check.method(v);
    this.#s.changed |= CHANGED_METHOD;
  }
  get path(): string {
    return this.#s.path;
  }
  set path(v: string) {
    allow(REQUEST_PHASES, 'setting ctx.request.path');
    this.#s.path = check.path(v);
    this.#s.changed |= CHANGED_PATH;
  }
  get query(): string {
    return this.#s.query;
  }
  set query(v: string) {
    allow(REQUEST_PHASES, 'setting ctx.request.query');
    this.#s.query = check.query(v);
    this.#s.changed |= CHANGED_QUERY;
  }
  /** path plus `?query` when there is one. */
  get url(): string {
    const s = this.#s;
    return s.query ? `${s.path}?${s.query}` : s.path;
  }
  get headers(): HeaderList {
    return this.#s.headers;
  }
  get httpVersion(): string {
    return this.#s.httpVersion;
  }
  get scheme(): string {
    return this.#s.scheme;
  }
  get clientIp(): string {
    return this.#s.clientIp;
  }
  get clientPort(): number {
    return this.#s.clientPort;
  }
  /** TLS facts of an HTTPS request; null over plain HTTP. */
  get tls(): TlsView | null {
    return tlsViewOf(this.#s);
  }
  /** The request body (route `script_body`); null without one. */
  get body(): RequestBody | null {
    return bodyViewOf(this.#s);
  }
  /**
   * Replaces the body sent upstream (rewrite/access; the route needs `script_body`, so the client's
   * body was read first). A string goes as UTF-8. The proxy sets Content-Length.
   */
  setBody(body: string | Uint8Array): void {
    allow(REQUEST_PHASES, 'ctx.request.setBody()');
    const s = this.#s;
    const limit = s.route.bodyLimit;
    if (limit < 0) throw new Error(`ctx.request.setBody(): route ${s.route.name} has no script_body; set it so the proxy reads the request body before rewrite/access`);
    let data: string;
    if (typeof body === 'string') data = utf8Latin1(body);
    else if (body instanceof Uint8Array) data = latin1(body);
    else throw new TypeError(`ctx.request.setBody(): body must be a string or Uint8Array, got ${body === null ? 'null' : typeof body}`);
    if (data.length > limit) throw new RangeError(`ctx.request.setBody(): ${data.length} bytes is larger than the route's script_body (${limit} bytes)`);
    s.body = data;
    s.bodySet = true;
    bodyViews.delete(s);
  }
}

const bodyViews = new WeakMap<RequestState, RequestBody>();

/** `ctx.request.body` (runtime-api RequestBody) over the body's latin1 string, made once per request. */
function bodyViewOf(s: RequestState): RequestBody | null {
  const raw = s.body;
  if (raw === null) return null;
  let v = bodyViews.get(s);
  if (!v) {
    const bytes = (): Uint8Array => latin1Bytes(raw);
    const text = (): string => utf8Decode(bytes());
    v = Object.freeze({ length: raw.length, bytes, text, json: (): unknown => JSON.parse(text()) });
    bodyViews.set(s, v);
  }
  return v;
}

/** `ctx.request.tls` and its certificate are runtime-api's TlsInfo and ClientCertificate. */
export type TlsView = TlsInfo;
export type CertificateView = ClientCertificate;

const tlsViews = new WeakMap<RequestState, TlsView | null>();

/** Parses the init record's TLS field once per request (frozen; null over plain TCP). */
function tlsViewOf(s: RequestState): TlsView | null {
  let v = tlsViews.get(s);
  if (v !== undefined) return v;
  v = null;
  if (s.tlsRecord) {
    const r = JSON.parse(s.tlsRecord) as { n: string; p: string; c: string; cert?: ClientCertificate };
    v = Object.freeze({ serverName: r.n, protocol: r.p, cipher: r.c, clientCertificate: r.cert ? Object.freeze({ ...r.cert }) : null });
  }
  tlsViews.set(s, v);
  return v;
}

class ResponseView {
  #r: ResponseHeadState;
  constructor(r: ResponseHeadState) {
    this.#r = r;
  }
  get status(): number {
    return this.#r.status;
  }
  set status(v: number) {
    allow(HEADER_FILTER, 'setting ctx.response.status');
    this.#r.status = check.exitStatus(v);
    this.#r.statusChanged = true;
  }
  get headers(): HeaderList {
    return this.#r.headers;
  }
}

const EMPTY_RESPONSE = new ResponseHeadState(0, [], (what) => allow(0, `ctx.response.${what}`));

function exitHeaders(h: unknown): string[] {
  const out: string[] = [];
  if (h === undefined || h === null) return out;
  if (typeof h !== 'object') throw new TypeError('exit headers must be an object of name: value');
  for (const [k, v] of Object.entries(h as Record<string, unknown>)) {
    const name = check.headerName(k);
    if (Array.isArray(v)) for (const x of v) out.push(name, check.headerValue(name, x));
    else out.push(name, check.headerValue(name, v));
  }
  return out;
}

/** Largest `ctx.exit()` body (1 MiB); the request-phase result limit leaves room for headers. */
export const MAX_EXIT_BODY = 1 << 20;

/** The bytes of a body given as string or Uint8Array, for the wire. */
export function bodyToWire(body: unknown, what: string, limit: number = MAX_EXIT_BODY): { data: string; binary: boolean } {
  if (body === undefined || body === null) return { data: '', binary: false };
  if (typeof body === 'string') return { data: body, binary: false };
  if (body instanceof Uint8Array) {
    if (body.byteLength > limit) throw new RangeError(`${what}: ${body.byteLength} bytes is larger than ${limit}`);
    return { data: latin1(body), binary: true };
  }
  throw new TypeError(`${what}: body must be a string or Uint8Array, got ${typeof body}`);
}

/** `ctx.connection`: the client connection of a stream (also offered, without SNI, to HTTP requests). */
export interface ConnectionView {
  readonly clientIp: string;
  readonly clientPort: number;
  readonly tls: boolean;
  /** SNI sent by the client of a TLS stream or HTTPS request; '' otherwise. */
  readonly serverName: string;
  /** The client certificate the listener verified; null when none. */
  readonly clientCertificate: CertificateView | null;
}

export class Ctx {
  #s: RequestState;
  #t: TenantFacts;
  #connection: ConnectionView | null = null;
  #request: RequestView | null = null;
  #response: ResponseView | null = null;
  #responseOf: ResponseHeadState | null = null;

  constructor(s: RequestState, t: TenantFacts) {
    this.#s = s;
    this.#t = t;
  }

  get phase(): string {
    return PHASE_NAMES[currentPhase()] ?? 'none';
  }
  get vars(): Record<string, unknown> {
    return this.#s.vars;
  }
  get log(): typeof scriptLog {
    return scriptLog;
  }
  get requestId(): string {
    return this.#s.requestId;
  }
  get route(): string {
    return this.#s.route.name;
  }
  get tenant(): string {
    return this.#t.name;
  }
  /** The tenant's `env` from the config: settings and secrets kept out of the script files. */
  get env(): Readonly<Record<string, string>> {
    return this.#t.env;
  }
  shared(name: string): SharedStore {
    allow(ANY_PHASE, 'ctx.shared()');
    return sharedDict(name);
  }
  /** Hashes, HMACs, a constant-time compare and random bytes (script-crypto.ts). */
  get crypto(): typeof scriptCrypto {
    return scriptCrypto;
  }

  get request(): RequestView {
    allow(ANY_PHASE, 'ctx.request');
    return (this.#request ??= new RequestView(this.#s));
  }

  /** The client connection. A stream's init record has scheme tcp/tls and its SNI as `host`. */
  get connection(): ConnectionView {
    allow(ANY_PHASE, 'ctx.connection');
    const s = this.#s;
    const stream = s.scheme === 'tcp' || s.scheme === 'tls';
    const tls = tlsViewOf(s);
    return (this.#connection ??= Object.freeze({
      clientIp: s.clientIp,
      clientPort: s.clientPort,
      tls: s.scheme === 'tls' || s.scheme === 'https',
      serverName: stream ? (s.headers.get('host') ?? '') : (tls?.serverName ?? ''),
      clientCertificate: tls?.clientCertificate ?? null,
    }));
  }

  /** The balancer phase's view: targets, the last failure, pick(). */
  get balancer(): BalancerView {
    allow(BALANCER, 'ctx.balancer');
    return currentBalancer();
  }

  get upstream(): string {
    allow(ANY_PHASE, 'ctx.upstream');
    return this.#s.upstream;
  }
  set upstream(name: string) {
    allow(REQUEST_PHASES, 'setting ctx.upstream');
    if (typeof name !== 'string' || !this.#t.upstreams.has(name)) {
      throw new TypeError(`unknown upstream ${JSON.stringify(name)} (configured: ${[...this.#t.upstreams].join(', ') || 'none'})`);
    }
    this.#s.upstream = name;
    this.#s.changed |= CHANGED_UPSTREAM;
  }

  exit(status: number, opts?: { headers?: Record<string, string | number | readonly string[]>; body?: string | Uint8Array }): void {
    allow(REQUEST_PHASES, 'ctx.exit()');
    const s = this.#s;
    if (s.exit) throw new Error('ctx.exit()/ctx.redirect() was already called for this request');
    const st = check.exitStatus(status);
    const headers = exitHeaders(opts?.headers);
    const body = bodyToWire(opts?.body, 'ctx.exit()');
    if (body.data.length > MAX_EXIT_BODY) throw new RangeError(`ctx.exit(): body of ${body.data.length} bytes is larger than ${MAX_EXIT_BODY}`);
    s.exit = { status: st, headers, body: body.data, binary: body.binary };
  }

  redirect(url: string, status: number = 302): void {
    allow(REQUEST_PHASES, 'ctx.redirect()');
    const s = this.#s;
    if (s.exit) throw new Error('ctx.exit()/ctx.redirect() was already called for this request');
    const st = check.redirectStatus(status);
    s.exit = { status: st, headers: ['location', check.redirectUrl(url)], body: '', binary: false };
  }

  get response(): ResponseView {
    allow(RESPONSE_PHASES, 'ctx.response');
    const s = this.#s;
    if (s.responseRecord) {
      s.response = responseFromRecord(s.responseRecord, true);
      s.responseRecord = '';
    }
    const r = s.response ?? EMPTY_RESPONSE;
    if (this.#responseOf !== r) {
      this.#responseOf = r;
      this.#response = new ResponseView(r);
    }
    return this.#response!;
  }

  get timings(): { total: number; upstreamConnect: number; upstreamHeader: number; upstreamBody: number } {
    allow(LOG, 'ctx.timings');
    return this.#s.summary!.timings;
  }
  get bytesSent(): number {
    allow(LOG, 'ctx.bytesSent');
    return this.#s.summary!.bytesSent;
  }
  get bytesReceived(): number {
    allow(LOG, 'ctx.bytesReceived');
    return this.#s.summary!.bytesReceived;
  }
  get upstreamAddress(): string {
    allow(LOG, 'ctx.upstreamAddress');
    return this.#s.summary!.upstreamAddress;
  }
  get error(): string {
    allow(LOG, 'ctx.error');
    return this.#s.summary!.error;
  }
}
