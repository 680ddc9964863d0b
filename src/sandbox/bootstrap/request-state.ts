/**
 * Runs inside the isolate: one request's state, kept between phases so later crossings send only
 * what changed (research §8). Created by the first crossing of a request from the init record and
 * deleted by the host's free/flush (after log, or on abort). Holds the request as scripts see it,
 * `vars`, the chosen upstream, an exit response, the response head and the log summary.
 */
import { INIT_FIXED_FIELDS } from '../wire.ts';
import { HeaderList } from './header-list.ts';
import { allow, HEADER_FILTER, REQUEST_PHASES } from './phase-guard.ts';

/** A route as installed: name, phase functions (null = not defined) and default upstream. */
export interface InstalledRoute {
  name: string;
  fns: Array<((...args: unknown[]) => unknown) | null>;
  keys: Array<string | null>;
  upstream: string;
  /** The route's script_body in bytes: the largest body ctx.request.setBody() takes; -1 without one. */
  bodyLimit: number;
}

export interface ExitResponse {
  status: number;
  headers: string[];
  body: string;
  binary: boolean;
}

export interface LogSummaryState {
  status: number;
  bytesSent: number;
  bytesReceived: number;
  timings: Readonly<{ total: number; upstreamConnect: number; upstreamHeader: number; upstreamBody: number }>;
  upstreamAddress: string;
  error: string;
}

export const CHANGED_METHOD = 1;
export const CHANGED_PATH = 2;
export const CHANGED_QUERY = 4;
export const CHANGED_UPSTREAM = 8;

function requestGuard(what: string): void {
  allow(REQUEST_PHASES, `ctx.request.${what}`);
}

function responseGuard(what: string): void {
  allow(HEADER_FILTER, `ctx.response.${what}`);
}

/** Splits `a\nb\n…` from `start` into a header list. */
export function headerRecord(parts: string[], start: number): string[] {
  return start >= parts.length ? [] : parts.slice(start);
}

export class ResponseHeadState {
  status: number;
  statusChanged = false;
  readonly headers: HeaderList;
  constructor(status: number, headers: string[], guard: (what: string) => void = responseGuard) {
    this.status = status;
    this.headers = new HeaderList(headers, guard);
  }
}

/** Parses a response record `status\nname\nvalue…`. */
export function responseFromRecord(record: string, readOnly: boolean): ResponseHeadState {
  const parts = record.split('\n');
  const guard = readOnly ? (what: string) => allow(0, `ctx.response.${what}`) : responseGuard;
  return new ResponseHeadState(Number(parts[0]), headerRecord(parts, 1), guard);
}

export class RequestState {
  readonly sid: number;
  readonly route: InstalledRoute;
  readonly requestId: string;
  method: string;
  path: string;
  query: string;
  readonly httpVersion: string;
  readonly scheme: string;
  readonly clientIp: string;
  readonly clientPort: number;
  /** The connection's TLS facts (JSON of core/tls-facts.ts TlsRecord); '' over plain TCP. */
  readonly tlsRecord: string;
  /** The request body's bytes as a latin1 string (route script_body); null when there is none. */
  body: string | null = null;
  /** A script replaced the body (ctx.request.setBody): it goes upstream instead of the client's. */
  bodySet = false;
  readonly headers: HeaderList;
  changed = 0;
  upstream: string;
  vars: Record<string, unknown> = {};
  exit: ExitResponse | null = null;
  response: ResponseHeadState | null = null;
  /** A read-only response record not parsed yet (the log phase's): parsed on first ctx.response. */
  responseRecord = '';
  summary: LogSummaryState | null = null;
  /** The script-facing ctx, created on first use. */
  ctx: object | null = null;

  constructor(sid: number, init: string, routes: ReadonlyArray<InstalledRoute | null>) {
    const p = init.split('\n');
    const route = routes[Number(p[0])];
    if (!route) throw new Error(`bootstrap: unknown route index ${p[0]}`);
    this.sid = sid;
    this.route = route;
    this.requestId = p[1]!;
    this.method = p[2]!;
    this.path = p[3]!;
    this.query = p[4]!;
    this.httpVersion = p[5]!;
    this.scheme = p[6]!;
    this.clientIp = p[7]!;
    this.clientPort = Number(p[8]);
    this.tlsRecord = p[9]!;
    this.headers = new HeaderList(headerRecord(p, INIT_FIXED_FIELDS), requestGuard);
    this.upstream = route.upstream;
  }
}
