/**
 * The wire format between the host and the trusted bootstrap inside a tenant's isolate. Imported
 * by both sides (the bootstrap is bundled from TypeScript, so this file must stay free of Node
 * APIs). Only primitives cross: numbers, and strings that are either '\n'-joined records (HTTP
 * names and values cannot contain '\n') or JSON built and size-checked inside the timed call.
 *
 * Init record (sent with the first crossing of a request):
 *   routeIndex \n requestId \n method \n path \n query \n httpVersion \n scheme \n clientIp \n clientPort \n tls (JSON of core/tls-facts.ts, or empty) [\n name \n value …]
 * Response record: status [\n name \n value …]
 * Balancer record: upstream \n tries \n failureCode \n failureAddress [\n address \n healthy(0|1) \n inFlight \n weight …]
 */

/** Phase numbers used on the wire, in the order they run. */
export const PHASE_ID = { rewrite: 0, access: 1, header_filter: 2, body_filter: 3, log: 4, balancer: 5 } as const;
/** balancer runs between access and header_filter; it is numbered last so the older ids stay. */
export const PHASE_NAMES = ['rewrite', 'access', 'header_filter', 'body_filter', 'log', 'balancer'] as const;
export const INIT_FIXED_FIELDS = 10;

/** Size caps, checked inside the isolate before anything is returned. */
export const WIRE_LIMITS = {
  /** JSON result of rewrite+access, including an exit body. */
  requestResult: (1 << 20) + 64 * 1024,
  /** JSON result of header_filter. */
  headResult: 256 * 1024,
  /** JSON result of a log flush. */
  flushResult: 1 << 20,
  /** body_filter may return at most factor × input + slack characters/bytes. */
  bodyFactor: 4,
  bodySlack: 1 << 20,
  logEntriesPerCall: 100,
  logMessage: 8 * 1024,
  logFields: 16 * 1024,
  /** Characters of ctx.log messages + fields one phase call may keep; lines past it are dropped (counted). */
  logCharsPerCall: 128 * 1024,
  /** Room a result keeps for its logs on top of its own cap (their JSON escaping included). */
  logResultRoom: 2 * 128 * 1024 + 16 * 1024,
  errorMessage: 2_000,
  errorStack: 8_000,
} as const;

/** A route as the bootstrap knows it: name, script key per phase (null = not defined), default upstream. */
export interface WireRoute {
  n: string;
  s: Array<string | null>;
  u: string;
  /** The route's script_body in bytes (the largest body ctx.request.setBody() takes); absent without one. */
  b?: number;
}

/** Error kinds: S = the script threw, F = forbidden call, R = bad result, I = bootstrap fault. */
export type WireErrorKind = 'S' | 'F' | 'R' | 'I';
export interface WireError {
  k: WireErrorKind;
  /** Phase number that was running. */
  p: number;
  m: string;
  st: string;
}
/** [level 0..3 (debug, info, warn, error), message, fields JSON or ''] */
export type WireLog = [number, string, string];

export interface WireRequestResult {
  m?: string;
  p?: string;
  q?: string;
  /** The whole header list after the scripts, names and values joined by '\n' (neither may contain one). */
  h?: string;
  u?: string;
  /** Exit status; xh/xb/xbin describe the response (xbin: xb is latin1 bytes). */
  x?: number;
  xh?: string[];
  xb?: string;
  xbin?: 1;
  /** The request body a script set (ctx.request.setBody), as latin1 bytes. */
  bd?: string;
  l?: WireLog[];
  e?: WireError;
}

/** Result of balancer: u = upstream, t = target address, k = hash key (each only when the script set it). */
export interface WireBalancerResult {
  u?: string;
  t?: string;
  k?: string;
  l?: WireLog[];
  e?: WireError;
}

export interface WireHeadResult {
  s?: number;
  /** The whole header list, names and values joined by '\n' (neither may contain one). */
  h?: string;
  l?: WireLog[];
  e?: WireError;
}

/** body_filter envelope, used (tag 'j') only when there are logs or an error. */
export interface WireBodyEnvelope {
  /** 't' text, 'b' latin1 bytes, null unchanged */
  r: 't' | 'b' | null;
  d: string;
  l?: WireLog[];
  e?: WireError;
}

/** Log flush record: [sid, init, status, bytesSent, bytesReceived, total, connect, header, body, upstreamAddress, error, responseRecordHeaders] or [sid] (free only). */
export type WireLogRecord = [number, string, number, number, number, number, number, number, number, string, string, string] | [number];
/** One flush outcome for a request that logged or failed: [sid, logs, error or 0]. */
export type WireFlushOutcome = [number, WireLog[], WireError | 0];
