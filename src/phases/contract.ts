/**
 * The contract between the proxy core (src/core) and the phase-script machinery (src/phases,
 * src/sandbox, src/compile). The core knows nothing about isolates: it asks a generation's
 * `ScriptHost` for a route's `RouteScripts`, opens one `ScriptSession` per request, and calls the
 * session at fixed points of the request's way through the proxy:
 *
 *   requestPhases()  after routing, before an upstream is picked (rewrite + access, one crossing)
 *   headerFilter()   when the upstream's response head arrives, before anything is sent
 *   balancer()       before each upstream try (retries too) when the route has balancer_by_script
 *   responseStart()  (optional) header_filter + the first body_filter call in one crossing
 *   bodyFilter()     for each response body chunk; eof=true rides on the last chunk (or an empty one)
 *   log()            after the response finished or the client went away; never delays the response
 *   close()          always last (idempotent): frees the request's state (`ctx.vars`) in the isolate
 *
 * Headers cross as flat `[name, value, name, value, …]` lists with lower-case names; a repeated
 * header appears several times. A method that fails throws a `ProxyError` whose code is one of
 * PRX_ERR_SCRIPT, PRX_ERR_SCRIPT_TIMEOUT, PRX_ERR_SCRIPT_MEMORY, PRX_ERR_SCRIPT_RESULT or
 * PRX_ERR_PHASE_FORBIDDEN and whose message names the script's own `file:line:column`.
 */
import type { Logger } from 'pino';
import type { Phase } from '../config/schema.ts';

/** What the core tells a script about the downstream request. */
export interface ScriptRequest {
  /** Request id (also sent upstream as x-request-id). */
  id: string;
  method: string;
  /** Normalised path without the query. */
  path: string;
  /** Query string without the leading `?`; '' when there is none. */
  query: string;
  /** Flat `[name, value, …]`, lower-case names, hop-by-hop headers already removed. */
  headers: string[];
  /** '1.0' | '1.1' | '2.0' */
  httpVersion: string;
  /** `tcp` / `tls` for a stream connection (see `ScriptHost.route`), which has method CONNECT, path `/`, and its SNI as `host`. */
  scheme: 'http' | 'https' | 'tcp' | 'tls';
  clientIp: string;
  clientPort: number;
  /** The connection's TLS facts as core/tls-facts.ts records them (JSON); '' or absent over plain TCP. */
  tls?: string;
  /** The whole request body, when the route has `script_body` and the request has one. */
  body?: Buffer;
  /** Route name (or `#index` when the route has none) and tenant name. */
  route: string;
  tenant: string;
}

/** Result of rewrite + access. */
export type RequestPhasesResult =
  | {
      action: 'continue';
      /** Each field is present only when a script changed it. */
      method?: string;
      path?: string;
      query?: string;
      /** The complete new header list, present only when a script changed any header. A `host` entry sets the Host sent upstream. */
      headers?: string[];
      /** Name of a configured upstream chosen by a script, instead of the route's. */
      upstream?: string;
      /** The body to send upstream instead of the client's (ctx.request.setBody; route script_body). */
      body?: Buffer;
    }
  | {
      /** `ctx.exit()` / `ctx.redirect()`: the core answers with this and skips the upstream. */
      action: 'exit';
      status: number;
      headers: string[];
      body: string | Uint8Array;
    };

/** A response head as header_filter sees and returns it. */
export interface ResponseHead {
  status: number;
  headers: string[];
}

/** What log sees, in addition to the request and `ctx.vars` that already live in the isolate. */
export interface LogSummary {
  status: number;
  /** Response body bytes written to the client. */
  bytesSent: number;
  /** Request body bytes read from the client. */
  bytesReceived: number;
  /** Milliseconds; upstream ones are -1 when there was no upstream request. */
  timings: { total: number; upstreamConnect: number; upstreamHeader: number; upstreamBody: number };
  /** `host:port` of the target that answered, '' when none. */
  upstreamAddress: string;
  /** Response headers as sent to the client. */
  responseHeaders: string[];
  /** Error code when the request failed (e.g. PRX_ERR_CLIENT_ABORTED), '' otherwise. */
  error: string;
}

/** What balancer_by_script sees for one try. */
export interface BalancerInput {
  /** The upstream this try goes to unless the script picks another. */
  upstream: string;
  /** Its current targets (`ip:port`), with health and load. */
  targets: ReadonlyArray<{ address: string; healthy: boolean; inFlight: number; weight: number }>;
  /** Tries already made (0 on the first call). */
  tries: number;
  /** Why the previous try failed (error code and target), on a retry. */
  failure?: { code: string; address: string };
}

/** The script's choice; every field is present only when the script set it. */
export interface BalancerChoice {
  /** A configured upstream other than the route's (or the one rewrite/access chose). */
  upstream?: string;
  /** A target address of that upstream (`ip:port` as in `targets`, or as configured). */
  address?: string;
  /** Key for the upstream's consistent_hash, instead of its `hash_key`. */
  hashKey?: string;
}

/** One request's calls into its tenant's isolate. */
export interface ScriptSession {
  /** Runs rewrite then access (those the route defines). Call only when `RouteScripts.has` says one exists. */
  requestPhases(req: ScriptRequest): RequestPhasesResult;
  /**
   * Runs balancer (call only when `RouteScripts.has.balancer`); undefined when the script chose
   * nothing, so the upstream's algorithm picks. Optional so older sessions stay valid.
   */
  balancer?(input: BalancerInput): BalancerChoice | undefined;
  /**
   * Runs header_filter; returns the head to send, or undefined when the script changed nothing.
   * May also be called when the route defines body_filter but no header_filter: it then only
   * records the head (no crossing) so body_filter's `ctx.response` shows it.
   */
  headerFilter(head: ResponseHead): ResponseHead | undefined;
  /** Runs body_filter on one chunk; returns the bytes to send, or undefined to send `chunk` unchanged. */
  bodyFilter(chunk: Buffer, eof: boolean): Buffer | undefined;
  /**
   * header_filter and body_filter's first call in ONE crossing, for when the response head and its
   * first chunk (often also the end) arrive in the same tick. Equivalent to
   * `headerFilter(head)` followed, when `chunk` is given or `eof` is true, by
   * `bodyFilter(chunk ?? empty, eof)`: header_filter runs when the route has one (otherwise the
   * head is only recorded, as headerFilter does); body_filter runs when the route has one and
   * (`chunk` is given or `eof`). Returns `head`: the head to send, undefined when unchanged; `body`:
   * the bytes to send instead of `chunk`, undefined to send `chunk` unchanged (or nothing when no
   * chunk was given). Pass eof=true with the last chunk; no separate empty eof call is needed.
   * Throws like headerFilter/bodyFilter (a header_filter failure means body_filter did not run).
   * Optional so older sessions stay valid: callers fall back to headerFilter + bodyFilter.
   */
  responseStart?(head: ResponseHead, chunk: Buffer | undefined, eof: boolean): { head: ResponseHead | undefined; body: Buffer | undefined };
  /** Runs log (fire-and-forget: never throws, may be deferred and batched). */
  log(summary: LogSummary): void;
  /** Frees the request's state in the isolate. Idempotent; called after log and on every abort path. */
  close(): void;
}

/** A route's compiled scripts inside one generation. */
export interface RouteScripts {
  /** Which phases this route defines; the core skips every other one at zero cost. */
  has: Readonly<Record<Phase, boolean>>;
  /**
   * Starts a request's session. `logger` is the request's child logger (has reqId), or a function
   * that makes it: called only when a script logs or fails, so most requests never pay for a
   * pino child logger.
   */
  open(req: ScriptRequest, logger: Logger | (() => Logger)): ScriptSession;
}

/** All tenants' isolates and compiled scripts of one generation. */
export interface ScriptHost {
  /**
   * Scripts of `config.routes[index]`, or undefined when that route names none. Streams follow the
   * routes: stream i of `config.streams` is `route(config.routes.length + i)` (access and log only).
   */
  route(index: number): RouteScripts | undefined;
  /** Disposes isolates; called when the generation's last request has ended. */
  dispose(): void;
}
