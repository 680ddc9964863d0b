/// <reference lib="es2015" />
/**
 * scriptgate runtime-api: everything a phase script can see.
 *
 * A phase script is one file whose default export is a handler; a route names it with its
 * `*_by_script` key (OpenResty's `access_by_lua_file`):
 *
 * ```ts
 * import type { AccessContext } from "scriptgate/runtime-api";
 * export default function access(ctx: AccessContext) {
 *   const auth = ctx.request.headers.get("authorization");
 *   if (!auth) return ctx.exit(401, { body: "missing token\n" });
 *   ctx.vars.user = auth.slice(7);
 * }
 * ```
 *
 * Each phase gets its own context type that offers only what the phase may do; the sandbox
 * enforces the same rule at run time and fails the request with `PRX_ERR_PHASE_FORBIDDEN` when a
 * script calls anything else. Handlers are synchronous. Scripts run in an isolate without Node
 * APIs: there is no `require`, `process`, filesystem, sockets, timers or `fetch`.
 *
 * All objects here are created by scriptgate and declared as interfaces: scripts cannot construct
 * them.
 *
 * @module
 */

/**
 * Per-request state shared by the phases of one request (OpenResty's `ngx.ctx`). Starts empty for
 * every request and is freed after `log` (also when the client aborted). Type your own fields by
 * declaration merging:
 *
 * ```ts
 * declare module "scriptgate/runtime-api" {
 *   interface Vars { user: string }
 * }
 * ```
 */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface Vars {
  // Undeclared fields are `any`, as ngx.ctx is untyped (`ctx.request.headers.set("x-user", ctx.vars.user)`
  // type-checks); fields declared by merging keep their types.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  [key: string]: any;
}

/** The name of a phase, as spelled in the config (`<phase>_by_script`), logs and metrics. */
export type Phase = 'rewrite' | 'access' | 'balancer' | 'header_filter' | 'body_filter' | 'log';

/** Read-only header access (Fetch `Headers` semantics). Names are case-insensitive and reported lower-case. */
export interface ReadonlyHeaders extends Iterable<[string, string]> {
  /** The value, repeated headers joined with ", " (repeated Cookie headers with "; "); `null` when absent. */
  get(name: string): string | null;
  /** Every value of a repeated header (e.g. `set-cookie`), in order. */
  getAll(name: string): string[];
  has(name: string): boolean;
  /** `[name, value]` pairs in wire order; a repeated header appears once per value. */
  entries(): IterableIterator<[string, string]>;
  keys(): IterableIterator<string>;
  values(): IterableIterator<string>;
  forEach(callback: (value: string, name: string, headers: this) => void): void;
}

/**
 * Mutable headers. Names must be HTTP tokens; values are bytes: no CR, LF or other control
 * characters and nothing above U+00FF (percent-encode text). Content-Length, Transfer-Encoding,
 * Connection and other hop-by-hop headers set here are dropped: the proxy frames the message.
 */
export interface Headers extends ReadonlyHeaders {
  /** Replaces every value of `name`. */
  set(name: string, value: string | number): void;
  /** Adds a value, keeping existing ones. */
  append(name: string, value: string | number): void;
  delete(name: string): void;
}

/** The downstream request as the later phases see it: changes made in rewrite/access are visible here. */
export interface ReadonlyRequest {
  /** Upper-case method, e.g. `GET`. */
  readonly method: string;
  /** Normalised path, without the query. */
  readonly path: string;
  /** Query string without the leading `?`; `''` when there is none. */
  readonly query: string;
  /** `path` plus `?query` when there is a query. */
  readonly url: string;
  /** Request headers (hop-by-hop headers already removed). */
  readonly headers: ReadonlyHeaders;
  /** `'1.0'`, `'1.1'` or `'2.0'`. */
  readonly httpVersion: string;
  readonly scheme: 'http' | 'https';
  readonly clientIp: string;
  readonly clientPort: number;
  /**
   * The TLS connection of an HTTPS request (HTTP/1.1 or HTTP/2); `null` over plain HTTP.
   * Read-only in every phase. An mTLS check in access:
   * `if (ctx.request.tls?.clientCertificate?.subject !== 'CN=billing,O=Acme') return ctx.exit(403);`
   */
  readonly tls: TlsInfo | null;
  /**
   * The request body, when the route sets `script_body` (its size limit) and the request has one;
   * `null` otherwise. Read whole before rewrite runs (like OpenResty's `ngx.req.read_body()`), then
   * sent upstream unchanged unless rewrite/access call `ctx.request.setBody()`. Read-only.
   */
  readonly body: RequestBody | null;
}

/** A request body read for the scripts (`ctx.request.body`). */
export interface RequestBody {
  /** Size in bytes. */
  readonly length: number;
  /** The bytes (a new copy each call). */
  bytes(): Uint8Array;
  /** The bytes decoded as UTF-8. */
  text(): string;
  /** `JSON.parse(text())`; throws on invalid JSON. */
  json(): unknown;
}

/** TLS facts of a connection, as nginx's `$ssl_server_name`, `$ssl_protocol` and `$ssl_cipher`. */
export interface TlsInfo {
  /** The server name (SNI) the client asked for; `''` without SNI. */
  readonly serverName: string;
  /** Negotiated protocol, e.g. `'TLSv1.3'`. */
  readonly protocol: string;
  /** Negotiated cipher, OpenSSL name (e.g. `'TLS_AES_256_GCM_SHA384'`). */
  readonly cipher: string;
  /**
   * The client certificate the listener verified against its `client_ca` (`verify_client: on` or
   * `optional`); `null` when the client sent none or the listener does not ask for one
   * (`verify_client: off`, the default). nginx's `$ssl_client_verify` is `SUCCESS` exactly when
   * this is set: a certificate that fails verification never reaches a script (400, as nginx).
   */
  readonly clientCertificate: ClientCertificate | null;
}

/** A verified client certificate, as nginx's `$ssl_client_*` variables. */
export interface ClientCertificate {
  /** Subject DN in RFC 2253 form, most specific first: `'CN=alice,O=Acme,C=DE'` (`$ssl_client_s_dn`). */
  readonly subject: string;
  /** Issuer DN in RFC 2253 form (`$ssl_client_i_dn`). */
  readonly issuer: string;
  /** Serial number, upper-case hex (`$ssl_client_serial`). */
  readonly serial: string;
  /** SHA-256 fingerprint, upper-case hex bytes joined by `:`. */
  readonly fingerprint256: string;
  /** Start and end of validity, ISO 8601 (`$ssl_client_v_start`, `$ssl_client_v_end`). */
  readonly notBefore: string;
  readonly notAfter: string;
  /** Subject alternative names as OpenSSL prints them (`'DNS:a.example, URI:spiffe://acme/billing'`); `''` when none. */
  readonly subjectAltName: string;
}

/** The request in rewrite and access: every change goes upstream. */
export interface Request extends ReadonlyRequest {
  /** Method sent upstream. */
  method: string;
  /** Path sent upstream; must start with `/` (no spaces, `?` or `#`); characters outside ASCII are percent-encoded as UTF-8. */
  path: string;
  /** Query sent upstream, without `?` (a leading `?` is dropped); characters outside ASCII are percent-encoded as UTF-8. */
  query: string;
  /** Headers sent upstream. Setting `host` sets the Host header sent upstream. */
  readonly headers: Headers;
  /**
   * Replaces the body sent upstream, like OpenResty's `ngx.req.set_body_data()`. Needs the route's
   * `script_body` (the client's body is then read before rewrite/access); throws without it, or
   * when the new body is larger than `script_body`. A string is sent as UTF-8. The proxy sets
   * `Content-Length`; set `content-type` yourself when it changes. Later phases (access after
   * rewrite) see the new body in `ctx.request.body`, and a retry sends it again.
   */
  setBody(body: string | Uint8Array): void;
}

/** The response head as the client will get it. */
export interface ReadonlyResponse {
  readonly status: number;
  readonly headers: ReadonlyHeaders;
}

/** The response head in header_filter: status and headers may change. */
export interface Response extends ReadonlyResponse {
  /** Status sent to the client (200–599). */
  status: number;
  readonly headers: Headers;
}

/** A value in a shared dictionary. */
export type SharedValue = string | number | boolean;

/**
 * An ngx.shared-style dictionary (`ngx.shared.DICT`), scoped to the tenant and shared by all its
 * routes, requests and **all cluster workers** of the instance; each call is atomic across workers.
 * Only dicts declared in config exist (`shared_dicts: { name: { capacity } }`); each tenant has its
 * own instance of each and can never read another tenant's. Keys expire after an optional TTL in
 * seconds (0 or omitted: never). Values survive reloads and isolate recreation; a cold start begins
 * empty. A full dict (capacity keys) first drops expired keys, then refuses new ones: `set`/`add`
 * return false and `incr` returns undefined; live keys are never evicted.
 *
 * Cost: a read is one host call (a few µs); a write is one cross-process transaction (tens of µs),
 * except in log scripts, whose writes are committed once per batch of requests.
 */
/**
 * A shared dict (`ctx.shared(name)`). Keys are non-empty strings of at most 1024 bytes (UTF-8);
 * values are numbers, booleans or strings of at most 65536 characters. Every method throws a
 * TypeError/RangeError for a key or value outside those bounds.
 */
export interface SharedDict {
  /** The value, or `undefined` when absent or expired. */
  get(key: string): SharedValue | undefined;
  /** Stores a value (`undefined` deletes the key); false when the dict is full. */
  set(key: string, value: SharedValue | undefined, ttlSeconds?: number): boolean;
  /** Stores only when the key is absent (or expired); returns whether it stored. */
  add(key: string, value: SharedValue, ttlSeconds?: number): boolean;
  /**
   * Adds `by` to a number and returns the new value, atomically. When the key is absent, stores
   * `init + by` with `ttlSeconds` if `init` is given, else returns `undefined`; an existing key
   * keeps its expiry (a fixed window: `incr(key, 1, 0, 60)`). Throws when the value is not a number,
   * or when the result would not be a finite number.
   */
  incr(key: string, by: number, init?: number, ttlSeconds?: number): number | undefined;
  /** Removes the key; returns whether it existed. */
  delete(key: string): boolean;
  /** Number of live (unexpired) keys (walks the dict: not for every request). */
  size(): number;
}

/**
 * `ctx.env`. Name the keys your config sets by declaration merging, as with `Vars`:
 * `declare module "scriptgate/runtime-api" { interface Env { WEBHOOK_SECRET: string } }`.
 */
export interface Env {
  readonly [name: string]: string | undefined;
}

/**
 * Structured fields of a log line (JSON-serialisable). A field named like one of the line's own
 * keys (`time`, `level`, `msg`, `pid`, `hostname`, `tenant`, `route`, `reqId`, `phase`) is written
 * as `field_<name>`.
 */
export type LogFields = Record<string, unknown>;

/**
 * Writes into the proxy's log (pino), tagged with tenant, route and request id. Lines are
 * collected during the phase and written right after it returns; at most 100 per phase call.
 */
export interface ScriptLogger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

/** What every phase offers. */
export interface BaseContext {
  /** The running phase. */
  readonly phase: Phase;
  /** Per-request state, visible to later phases of the same request; freed after log. */
  readonly vars: Vars;
  /** Log into the proxy's log with tenant, route and request id. */
  readonly log: ScriptLogger;
  /** The request id (also sent upstream as `x-request-id`). */
  readonly requestId: string;
  /** Name of the matched route (`#<index>` when it has none). */
  readonly route: string;
  /** Name of the tenant running this script. */
  readonly tenant: string;
  /**
   * The tenant's `env` from the config (`tenants.<name>.env`): settings and secrets such as a
   * webhook or JWT key, kept out of the script files. A value may come from the proxy's own
   * environment (`{ from_env: VAR }`). Frozen; a name the config does not set reads `undefined`.
   */
  readonly env: Env;
  /** The tenant's shared dictionary `name` (declared under `shared_dicts` in the config; others throw). */
  shared(name: string): SharedDict;
  /**
   * Hashes, HMACs, a constant-time compare and random bytes, synchronous, in the shape of Node's
   * `crypto` (OpenResty: `ngx.hmac_sha1`, lua-resty-string). Every phase.
   */
  readonly crypto: ScriptCrypto;
}

/** Hash names `createHash`/`createHmac` take (case and `-` are ignored: `'SHA-256'` works). */
export type HashAlgorithm = 'sha256' | 'sha384' | 'sha512' | 'sha1' | 'md5' | (string & {});

/** A running hash or HMAC, like Node's `Hash`/`Hmac`: `update()` as often as needed, then one `digest()`. */
export interface ScriptHash {
  /** Adds data; a string counts as its UTF-8 bytes. */
  update(data: string | Uint8Array): this;
  /** The result as bytes; a second call throws. */
  digest(): Uint8Array;
  /** The result encoded; `base64url` is unpadded, as Node's and JWT's. */
  digest(encoding: 'hex' | 'base64' | 'base64url' | 'latin1' | 'binary'): string;
}

/** `ctx.crypto`. */
export interface ScriptCrypto {
  /** `createHash('sha256').update(body).digest('hex')`. Throws on an unsupported algorithm. */
  createHash(algorithm: HashAlgorithm): ScriptHash;
  /** `createHmac('sha256', secret).update(payload).digest('base64url')` (a JWT HS256 signature). */
  createHmac(algorithm: HashAlgorithm, key: string | Uint8Array): ScriptHash;
  /**
   * Compares in a time that depends only on the length: use it for a MAC or token the client sent.
   * Strings compare as UTF-8 bytes; different lengths are unequal (no throw, unlike Node).
   */
  timingSafeEqual(a: string | Uint8Array, b: string | Uint8Array): boolean;
  /** Bytes from the host's CSPRNG (at most 65536 a call). */
  randomBytes(count: number): Uint8Array;
  /** A random (version 4) UUID. */
  randomUUID(): string;
}

/** Options of `ctx.exit()`. */
export interface ExitOptions {
  /** Response headers; an array value sends the header once per element. */
  headers?: Record<string, string | number | readonly string[]>;
  /** Response body; default empty. */
  body?: string | Uint8Array;
}

/** What rewrite and access share: the request is mutable and the request may end here. */
export interface RequestPhaseContext extends BaseContext {
  /** The request; method, path, query and headers may change and go upstream. */
  readonly request: Request;
  /**
   * Name of the upstream the request goes to: the route's, unless a script chose another. Setting
   * it to a name not configured under `upstreams` throws.
   */
  upstream: string;
  /**
   * Ends the request: the client gets this response, the upstream is not contacted, and no later
   * request phase runs (access does not run after an exit in rewrite); log still runs. `status` must be 200–599. Call it at most once;
   * `return ctx.exit(…)` stops your own handler too. `444`, as in nginx, sends nothing: the
   * connection is closed (an HTTP/2 stream is reset), and the log shows 444.
   */
  exit(status: number, options?: ExitOptions): void;
  /**
   * Ends the request with a redirect to `url` (no CR/LF). `status` is 301, 302, 303, 307 or 308;
   * default 302.
   */
  redirect(url: string, status?: 301 | 302 | 303 | 307 | 308): void;
}

/**
 * rewrite: runs after routing, before access and before an upstream is picked.
 * Default (no script): the request goes on unchanged.
 * May change method, path, query, headers and the upstream, or end the request with `exit()` /
 * `redirect()`. Cannot see a response (there is none yet).
 */
export interface RewriteContext extends RequestPhaseContext {
  readonly phase: 'rewrite';
}

/**
 * access: runs after rewrite (unless rewrite ended the request), before the upstream request.
 * Default (no script): every request is allowed.
 * Meant for authentication and authorization: may change the request like rewrite and end it
 * with `exit()` (e.g. 401/403) or `redirect()`.
 */
export interface AccessContext extends RequestPhaseContext {
  readonly phase: 'access';
}

/** One target of the upstream, as balancer sees it. */
export interface BalancerTarget {
  /** `ip:port` (a target given by DNS name appears once per resolved address). */
  readonly address: string;
  /** False while it fails its health checks or is ejected after consecutive failures. */
  readonly healthy: boolean;
  /** Requests in flight to it from this worker. */
  readonly inFlight: number;
  readonly weight: number;
}

/** Why the previous try failed, on a retry. */
export interface BalancerFailure {
  /** Error code, e.g. `PRX_ERR_UPSTREAM_CONNECT`, `PRX_ERR_UPSTREAM_TLS`, `PRX_ERR_UPSTREAM_TIMEOUT`. */
  readonly code: string;
  /** The target that failed. */
  readonly address: string;
}

/** `ctx.balancer`: the targets to choose from and the choice. */
export interface Balancer {
  /** The upstream this try goes to unless `pick()` names another. */
  readonly upstream: string;
  /** Its targets, in config order. */
  readonly targets: readonly BalancerTarget[];
  /** Tries already made for this request: 0 on the first call. */
  readonly tries: number;
  /** The previous try's failure; null on the first call. */
  readonly failure: BalancerFailure | null;
  /**
   * Sends this try to `address`, a target of `upstream` (default the current one; another must be
   * configured under `upstreams`). An address that is not a target of it fails the request (500).
   * Unhealthy targets may be picked: the script decides.
   */
  pick(address: string, upstream?: string): void;
  /** Key for the upstream's `consistent_hash`, instead of its `hash_key` (at most 1024 characters); `undefined` = the upstream's own. */
  hashKey: string | undefined;
}

/**
 * balancer: runs before each upstream try, after access (Pingora's `upstream_peer`, OpenResty's
 * `balancer_by_lua`), and again before each retry with `ctx.balancer.failure` set.
 * Default (no script, or a script that neither picks nor sets `hashKey`): the upstream's own
 * algorithm picks among healthy targets. The request is read-only; the request cannot end here.
 * Retries stay bounded by the upstream's `retries` and `retry_timeout`.
 */
export interface BalancerContext extends BaseContext {
  readonly phase: 'balancer';
  /** The request as rewrite/access left it (read-only). */
  readonly request: ReadonlyRequest;
  readonly balancer: Balancer;
}

/**
 * header_filter: runs when the upstream's response head has arrived, before anything is sent to
 * the client; also on a response the proxy makes itself once the route is known (an `exit()` or
 * `redirect()` of rewrite/access, a 502/503/504), as OpenResty's header filters run on ngx.exit and
 * error pages, but not on the 500 of a script that failed.
 * Default (no script): the head is sent as received.
 * May change the response status and headers. The request is read-only. Cannot end the request.
 */
export interface HeaderFilterContext extends BaseContext {
  readonly phase: 'header_filter';
  /** The request as rewrite/access left it (read-only). */
  readonly request: ReadonlyRequest;
  /** The upstream's response head; status and headers may change. */
  readonly response: Response;
  /** The upstream the request went to (read-only). */
  readonly upstream: string;
}

/**
 * body_filter: runs for each chunk of the response body, streaming; the last one comes with
 * `eof = true` (sometimes an empty chunk). On a response the proxy makes itself (an exit's body),
 * once, with the whole body and `eof = true`.
 * Default (no script, or a handler returning nothing or the chunk itself): the chunk's bytes are
 * sent unchanged. Request and response are read-only. A proxied response on a route with a
 * body_filter has no Content-Length (HTTP/1.1: chunked), as the filter may change it. Runs for
 * every chunk: per-byte work here is what costs.
 */
export interface BodyFilterContext extends BaseContext {
  readonly phase: 'body_filter';
  readonly request: ReadonlyRequest;
  /** The response head as sent to the client (read-only). */
  readonly response: ReadonlyResponse;
  readonly upstream: string;
}

/** Milliseconds; upstream ones are -1 when no upstream request was made. */
export interface Timings {
  /** From the request's arrival to the end of the response. */
  readonly total: number;
  readonly upstreamConnect: number;
  readonly upstreamHeader: number;
  readonly upstreamBody: number;
}

/**
 * log: runs after the response is finished, or after the client went away; never delays the
 * response (it may run a little later, batched). Default (no script): nothing beyond the access log.
 * Everything is read-only: request, response as sent, timings, byte counts and `ctx.vars`.
 */
export interface LogContext extends BaseContext {
  readonly phase: 'log';
  readonly request: ReadonlyRequest;
  /** The response as sent to the client. */
  readonly response: ReadonlyResponse;
  readonly upstream: string;
  readonly timings: Timings;
  /** Response body bytes written to the client. */
  readonly bytesSent: number;
  /** Request body bytes read from the client. */
  readonly bytesReceived: number;
  /** `host:port` of the upstream target of the last try (nginx's `$upstream_addr`); `''` when none was tried. */
  readonly upstreamAddress: string;
  /** Error code when the request failed (e.g. `PRX_ERR_CLIENT_ABORTED`), `''` otherwise. */
  readonly error: string;
}

/** The client connection of a TCP stream (`streams:` in the config). */
export interface StreamConnection {
  /** Client address and port. */
  readonly clientIp: string;
  readonly clientPort: number;
  /** True when the stream listener terminates TLS. */
  readonly tls: boolean;
  /** The server name (SNI) the client asked for over TLS; `''` without TLS or without SNI. */
  readonly serverName: string;
  /** The client certificate the stream's TLS verified (`verify_client`); `null` when none. */
  readonly clientCertificate: ClientCertificate | null;
}

/**
 * access on a TCP stream (a stream's `access_by_script`): runs once per connection, after TLS
 * termination when the stream has `tls`, before the upstream is connected and before any byte is
 * forwarded. Default (no script): every connection is allowed.
 * `exit()` refuses the connection: it is closed at once (the status only shows in the log, as
 * nginx's stream `$status`; headers and body are ignored). `ctx.route` is the stream's name.
 */
export interface StreamAccessContext extends BaseContext {
  readonly phase: 'access';
  readonly connection: StreamConnection;
  /** Upstream the connection goes to: the stream's, unless the script sets another configured one. */
  upstream: string;
  /** Refuses the connection (closed without a byte forwarded); call at most once. */
  exit(status: number): void;
}

/**
 * log on a TCP stream (`log_by_script`): runs after the connection has closed (refused, failed or
 * forwarded). `status` is nginx's stream `$status`: 200 forwarded, 403 refused by access, 500
 * script failure, 502 no target could be connected, 503 no target, 499 client left first.
 */
export interface StreamLogContext extends BaseContext {
  readonly phase: 'log';
  readonly connection: StreamConnection;
  readonly upstream: string;
  /** `response.status` is the connection's status; there are no headers. */
  readonly response: ReadonlyResponse;
  /** `total`: the connection's life; `upstreamConnect`: until the target was connected; `upstreamBody`: how long bytes flowed. */
  readonly timings: Timings;
  /** Bytes sent to the client (from the upstream). */
  readonly bytesSent: number;
  /** Bytes received from the client (sent upstream). */
  readonly bytesReceived: number;
  /** `host:port` of the target; `''` when none was connected. */
  readonly upstreamAddress: string;
  /** Error code (e.g. `PRX_ERR_STREAM_REFUSED`, `PRX_ERR_IDLE_TIMEOUT`, `PRX_ERR_UPSTREAM_CONNECT`), `''` otherwise. */
  readonly error: string;
}

/** Default export of a stream's `access_by_script` file. */
export type StreamAccessHandler = (ctx: StreamAccessContext) => void;
/** Default export of a stream's `log_by_script` file. */
export type StreamLogHandler = (ctx: StreamLogContext) => void;

/** Default export of a `rewrite_by_script` file. */
export type RewriteHandler = (ctx: RewriteContext) => void;
/** Default export of an `access_by_script` file. */
export type AccessHandler = (ctx: AccessContext) => void;
/** Default export of a `balancer_by_script` file. */
export type BalancerHandler = (ctx: BalancerContext) => void;
/** Default export of a `header_filter_by_script` file. */
export type HeaderFilterHandler = (ctx: HeaderFilterContext) => void;
/**
 * Default export of a `body_filter_by_script` file. `chunk` is text decoded as UTF-8 (a character
 * split across network chunks arrives whole in the next call). Return the chunk to send (string,
 * sent as UTF-8, or bytes), or nothing to send the original bytes unchanged. The result may be at
 * most 4 × the chunk's length + 1 MiB (room to inject a script or a banner into a small chunk).
 */
export type BodyFilterHandler = (ctx: BodyFilterContext, chunk: string, eof: boolean) => string | Uint8Array | void;
/** Default export of a `log_by_script` file. */
export type LogHandler = (ctx: LogContext) => void;

/** Context type of a phase. */
export interface PhaseContexts {
  rewrite: RewriteContext;
  access: AccessContext;
  balancer: BalancerContext;
  header_filter: HeaderFilterContext;
  body_filter: BodyFilterContext;
  log: LogContext;
}
