/**
 * The one definition of scriptgate's config: zod validates it and the TypeScript types come from
 * it (`Config` is what the rest of the code sees, with defaults filled in and units parsed).
 * Field names follow DESIGN.md; unknown fields are errors so typos do not pass silently.
 */
import { z } from 'zod';
import { parseDuration, parseHostPort, parseSize } from './units.ts';
import { isAccessField } from '../observability/access-log.ts';
import { FACILITIES, type Facility } from '../observability/syslog.ts';

/** Phase script keys of a route, in the order the phases run (OpenResty spelling). */
export const PHASES = ['rewrite', 'access', 'header_filter', 'body_filter', 'log', 'balancer'] as const;
export type Phase = (typeof PHASES)[number];
/** Same order as PHASES. `balancer` runs between access and header_filter but is listed last so the wire ids of the others stay. */
export const PHASE_SCRIPT_KEYS = ['rewrite_by_script', 'access_by_script', 'header_filter_by_script', 'body_filter_by_script', 'log_by_script', 'balancer_by_script'] as const;

/** The longest duration a node timer holds (about 24.8 days); longer ones would fire at once. */
const MAX_DURATION_MS = 2 ** 31 - 1;

const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `invalid duration ${JSON.stringify(v)} (use 250ms, 2s, 1m or a number of milliseconds)` });
    return z.NEVER;
  }
  if (ms > MAX_DURATION_MS) {
    ctx.addIssue({ code: 'custom', message: `duration ${JSON.stringify(v)} is longer than 24 days (${MAX_DURATION_MS} ms), the most a timer holds` });
    return z.NEVER;
  }
  return ms;
});

/** A duration of at least `min` ms (a period that must not spin: health checks, DNS, flushes). */
const durationAtLeast = (min: number, what: string) => duration.refine((ms) => ms >= min, { message: `${what} must be at least ${min} ms` });

const size = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const bytes = parseSize(v);
  if (bytes === undefined) {
    ctx.addIssue({ code: 'custom', message: `invalid size ${JSON.stringify(v)} (use 512, 16kb, 1mb)` });
    return z.NEVER;
  }
  return bytes;
});

/** A size of at least `min` bytes (a cap where 0 would refuse everything rather than mean "none"). */
const sizeAtLeast = (min: number, what: string) => size.refine((n) => n >= min, { message: `${what} must be at least ${min} byte${min === 1 ? '' : 's'} (0 is not "unlimited" here)` });

const address = z.string().refine((v) => parseHostPort(v) !== undefined, { message: 'expected host:port, e.g. 127.0.0.1:6188' });

const limitsFields = {
  /** The request head must arrive within this (slowloris guard). Default 10s. */
  client_header_timeout: duration.default(10_000),
  /** An HTTP/1 request body with no bytes arriving for this long fails with 408 (nginx's client_body_timeout). Default 60s. */
  client_body_timeout: duration.default(60_000),
  /** A response the client takes no bytes of for this long is cut and its upstream request cancelled (nginx's send_timeout). Default 60s. */
  send_timeout: duration.default(60_000),
  /** Request line plus headers. Default 16kb. (Not 0: unlike max_body_size, there is no "unlimited".) */
  max_header_size: sizeAtLeast(1, 'max_header_size').default(16 * 1024),
  /** Request line alone; longer gets 414. Default 8kb. (Not 0.) */
  max_uri_size: sizeAtLeast(1, 'max_uri_size').default(8 * 1024),
  /** 0 = unlimited, streamed. Larger bodies get 413. */
  max_body_size: size.default(0),
  /** Idle keep-alive connections from clients are closed after this. Default 75s (nginx). */
  keepalive_timeout: duration.default(75_000),
  /** Streams one HTTP/2 client connection may have open at once. Default 128 (nginx). */
  http2_max_concurrent_streams: z.number().int().min(1).max(65_535).default(128),
  /** A WebSocket (or other Upgrade) tunnel with no data either way for this long is closed. Default 60s (nginx proxy_read_timeout). */
  websocket_idle_timeout: duration.default(60_000),
  /**
   * Keep request headers whose name has an underscore (`X_User`). Default false: they are dropped
   * before scripts and upstream see them, as nginx's `underscores_in_headers off`, since CGI/WSGI/PHP
   * apps read `X_User` and `X-User` as one header and a client's copy could pass for a script's.
   */
  underscores_in_headers: z.boolean().default(false),
};
const limits = z.strictObject(limitsFields);
/** Per-listener override: every field optional; unset ones fall back to the top-level limits. */
const listenerLimits = z.strictObject({
  client_header_timeout: duration.optional(),
  client_body_timeout: duration.optional(),
  send_timeout: duration.optional(),
  max_header_size: sizeAtLeast(1, 'max_header_size').optional(),
  max_uri_size: sizeAtLeast(1, 'max_uri_size').optional(),
  max_body_size: size.optional(),
  keepalive_timeout: duration.optional(),
  http2_max_concurrent_streams: z.number().int().min(1).max(65_535).optional(),
  underscores_in_headers: z.boolean().optional(),
  websocket_idle_timeout: duration.optional(),
});

const certificate = z.strictObject({ cert: z.string(), key: z.string() });

/**
 * TLS termination of a listener. The certificate is picked by SNI among `certificates` (exact
 * names first, then `*.` wildcards, from each certificate's subjectAltName DNS names, else its CN);
 * the first one answers clients without SNI or with an unknown name. Certificates, `client_ca`,
 * `min_version` and `ciphers` are re-read on hot reload (new connections get them; open ones keep
 * theirs); `verify_client` needs a restart.
 */
const listenerTls = z.strictObject({
  certificates: z.array(certificate).min(1),
  /** Oldest protocol accepted. Default TLSv1.2. */
  min_version: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  /** OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are always the defaults). Default: node's. */
  ciphers: z.string().optional(),
  /** PEM file of the CAs client certificates must chain to (mTLS). */
  client_ca: z.string().optional(),
  /** nginx's ssl_verify_client: `on` refuses clients without a valid certificate; `optional` asks but lets them in. */
  verify_client: z.enum(['off', 'on', 'optional']).default('off'),
});

const listener = z.strictObject({
  address,
  http2: z.boolean().default(false),
  tls: listenerTls.optional(),
  limits: listenerLimits.optional(),
});

/** An upstream target's host:port: port 0 means "any free port" to a listener, nothing to connect to. */
const targetAddress = address.refine((v) => parseHostPort(v)?.port !== 0, { message: 'a target needs a port from 1 to 65535' });
const target = z.preprocess(
  (v) => (typeof v === 'string' ? { address: v } : v),
  z.strictObject({ address: targetAddress, weight: z.number().int().min(1).max(1000).default(1) }),
);

/** Balancing algorithms (src/upstream/balancer.ts ALGORITHMS). */
export const BALANCE = ['round_robin', 'random', 'least_conn', 'consistent_hash', 'ewma'] as const;

const statusCode = z.number().int().min(100).max(599);

/** Active health checks (src/upstream/health-check.ts). */
const healthCheck = z.strictObject({
  /** `http`: GET `path`, status must be in `expected_status`; `tcp`: a TCP connect is enough. */
  type: z.enum(['http', 'tcp']).default('http'),
  path: z.string().startsWith('/', 'health_check.path must start with /').default('/'),
  /** Host header of the probe; default the target's `host:port`. */
  host: z.string().optional(),
  /** Accepted statuses; default any 2xx or 3xx. */
  expected_status: z.union([statusCode.transform((s) => [s]), z.array(statusCode).min(1)]).optional(),
  interval: durationAtLeast(10, 'health_check.interval').default(5_000),
  timeout: durationAtLeast(1, 'health_check.timeout').default(2_000),
  /** Consecutive passing probes that bring a down target back. */
  healthy_threshold: z.number().int().min(1).max(100).default(2),
  /** Consecutive failing probes that take a target down. */
  unhealthy_threshold: z.number().int().min(1).max(100).default(3),
});

const upstream = z.strictObject({
  targets: z.array(target).min(1, 'an upstream needs at least one target'),
  balance: z.enum(BALANCE).default('round_robin'),
  /** consistent_hash key: header:<name> | cookie:<name> | client_ip | path. Default client_ip. */
  hash_key: z
    .string()
    .regex(/^(header:[!#$%&'*+.^_`|~0-9A-Za-z-]+|cookie:[^\s;=,]+|client_ip|path)$/, 'expected header:<name>, cookie:<name>, client_ip or path')
    .default('client_ip'),
  tls: z
    .strictObject({
      /** Server name sent (SNI) and verified; default the target's host name (none for an IP). */
      sni: z.string().optional(),
      /** PEM CA bundle to verify the origin with, instead of the system store. */
      ca: z.string().optional(),
      verify: z.boolean().default(true),
      /** PEM client certificate and key for mTLS. */
      cert: z.string().optional(),
      key: z.string().optional(),
    })
    .refine((t) => (t.cert === undefined) === (t.key === undefined), { message: 'tls.cert and tls.key go together' })
    .optional(),
  protocol: z.enum(['http1', 'http2']).default('http1'),
  timeouts: z
    .strictObject({ connect: duration.default(2_000), read: duration.default(60_000), idle: durationAtLeast(1, 'timeouts.idle').default(60_000) })
    .prefault({}),
  /**
   * Most connections to one target at once (undici Pool size); 0 (the default) = no cap, as nginx's
   * `max_conns`: a cap makes requests queue behind slow clients that hold their connections.
   * Idle connections are kept alive for `timeouts.idle` either way.
   */
  connections: z.number().int().min(0).default(0),
  /** Further tries on other targets after a failed one (see src/upstream/retry-policy.ts). */
  retries: z.number().int().min(0).max(16).default(1),
  /** No retry starts later than this after the first try; 0 = no time limit. */
  retry_timeout: duration.default(10_000),
  /** Idempotent requests with a Content-Length up to this are buffered so they can be retried after being sent. 0 = never. */
  retry_body_limit: size.default(64 * 1024),
  health_check: healthCheck.optional(),
  /** Passive ejection: `max_fails` consecutive failed tries take a target out for `cooldown`; 0 = off. */
  passive: z.strictObject({ max_fails: z.number().int().min(0).max(1000).default(3), cooldown: duration.default(10_000) }).prefault({}),
  /** When every target is unhealthy: `fail_open` sends to them anyway, `fail_closed` answers 503. */
  all_unhealthy: z.enum(['fail_open', 'fail_closed']).default('fail_open'),
  /** Targets given by name are resolved again every `interval`; `family` 4 or 6 limits the lookup. */
  dns: z.strictObject({ interval: durationAtLeast(10, 'dns.interval').default(30_000), family: z.union([z.literal(0), z.literal(4), z.literal(6)]).default(0) }).prefault({}),
});

const logLevel = z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

/** `log.access_log` as an object: which fields, and where the lines go (stdout when neither file nor syslog). */
const accessLogOptions = z.strictObject({
  enabled: z.boolean().default(true),
  /** Field names (ACCESS_FIELDS, `request_header:<name>`, `response_header:<name>`); default the classic set. */
  fields: z.array(z.string().refine(isAccessField, { message: 'unknown access log field (see README: log.access_log.fields)' })).min(1).optional(),
  /** Append lines to this file (relative to the config file) instead of stdout. */
  file: z.string().min(1).optional(),
  /** Send lines to a syslog server (RFC 5424) instead of stdout. */
  syslog: z
    .strictObject({
      address,
      protocol: z.enum(['udp', 'tcp']).default('udp'),
      facility: z.enum(Object.keys(FACILITIES) as [Facility, ...Facility[]]).default('local0'),
      app_name: z.string().regex(/^[!-~]{1,48}$/, 'app_name: 1-48 printable ASCII characters').default('scriptgate'),
    })
    .optional(),
});

/** `tracing:` spans exported with OTLP over HTTP (JSON). */
const tracing = z.strictObject({
  /** Collector base URL; spans go to `{otlp_endpoint}/v1/traces`. */
  otlp_endpoint: z.url({ protocol: /^https?$/ }),
  service_name: z.string().min(1).default('scriptgate'),
  /** Share of new traces recorded (0..1); a caller's sampled flag in traceparent wins. */
  sample_ratio: z.number().min(0).max(1).default(1),
  /** Spans waiting for export beyond this are dropped. */
  max_queue: z.number().int().min(1).max(1_000_000).default(2048),
  /** How often queued spans are sent. */
  flush_interval: durationAtLeast(10, 'flush_interval').default(1000),
});

/**
 * One `env` value a tenant's scripts read as `ctx.env.NAME`: a string, or `{ from_env: VAR }` to
 * take it from the proxy's environment when the config loads (a missing variable is a config error).
 */
const envValue = z.union([z.string(), z.strictObject({ from_env: z.string().min(1) })]).transform((v, ctx) => {
  if (typeof v === 'string') return v;
  const value = process.env[v.from_env];
  if (value === undefined) {
    ctx.addIssue({ code: 'custom', message: `environment variable ${v.from_env} is not set` });
    return z.NEVER;
  }
  return value;
});

const tenant = z.strictObject({
  memory_mb: z.number().int().min(8).max(4096).default(64),
  cpu_ms: z.number().min(1).max(60_000).default(50),
  /**
   * Script time the tenant may use per second, in each worker process (per call the larger of
   * isolate CPU and wall time); over it, its new requests get 503 until it is back under.
   */
  cpu_budget_ms_per_s: z.number().min(1).max(1_000_000).default(500),
  /**
   * Bytes of script log lines (ctx.log, console; message + fields) the tenant may write per second
   * in each worker process; lines past it are dropped and counted, with one warning per 10 s.
   * 0 = no limit. Default 1mb.
   */
  log_bytes_per_s: size.default(1024 * 1024),
  scripts: z.string().default('.'),
  /** Level of this tenant's script log lines (`ctx.log.*`); default: the process's `log.level`. */
  log_level: logLevel.optional(),
  /** Settings and secrets for the tenant's scripts (`ctx.env`), kept out of the script files. */
  env: z
    .record(z.string(), envValue)
    .superRefine((env, ctx) => {
      for (const name of Object.keys(env)) {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) ctx.addIssue({ code: 'custom', path: [name], message: `env name ${JSON.stringify(name)}: use letters, digits and _ (not starting with a digit)` });
      }
    })
    .default({}),
});

const hostPattern = z
  .string()
  .min(1)
  .superRefine((h, ctx) => {
    if (/^(\*\.)?[A-Za-z0-9.-]+$/.test(h) || /^\[[0-9A-Fa-f:.]+\]$/.test(h) || h === '*') return;
    const withPort = /^(\*\.)?[A-Za-z0-9.-]+:\d+$/.test(h);
    ctx.addIssue({ code: 'custom', message: withPort ? 'routes match the host name only, whatever the port (as nginx server_name): drop the port, or give each port its own listener' : 'expected a host name, *.suffix, an [IPv6] literal or *' });
  });
/** A Host header value (RFC 9110 §7.2): a name, IPv4 or [IPv6] literal, with an optional port. */
const hostHeader = z.string().regex(/^(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/, 'expected a Host value: a host name or IP address, with an optional :port');

const route = z.strictObject({
  name: z.string().min(1).optional(),
  match: z
    .strictObject({
      host: z.union([hostPattern, z.array(hostPattern).min(1)]).optional(),
      path_prefix: z.string().startsWith('/', 'path_prefix must start with /').default('/'),
      methods: z.array(z.string().regex(/^[A-Z]+$/, 'methods are upper-case tokens like GET')).min(1).optional(),
    })
    .prefault({}),
  tenant: z.string().default('default'),
  upstream: z.string().optional(),
  upstream_host: hostHeader.optional(),
  rewrite_by_script: z.string().optional(),
  access_by_script: z.string().optional(),
  header_filter_by_script: z.string().optional(),
  body_filter_by_script: z.string().optional(),
  log_by_script: z.string().optional(),
  /** Picks the upstream target for each try (and again, with the failure, for a retry). */
  balancer_by_script: z.string().optional(),
  /**
   * rewrite/access see the request body (`ctx.request.body`, like OpenResty's ngx.req.read_body):
   * it is read whole, up to this size, before they run (a larger one gets 413). Unset: scripts
   * never see the body, which streams to the upstream.
   */
  script_body: size.optional(),
});

/** Phase script keys a stream may name (a subset of PHASE_SCRIPT_KEYS). */
export const STREAM_SCRIPT_KEYS = ['access_by_script', 'log_by_script'] as const;

/**
 * A TCP stream listener (nginx's `stream { server { proxy_pass … } }`): every connection accepted
 * on `address` is forwarded as raw bytes to a target of `upstream` (its balancing, health, retries
 * for connect failures and TLS origination apply). With `tls` the listener terminates TLS first
 * (certificates by SNI, as HTTP listeners). `access_by_script` runs once per connection with the
 * client address (and SNI) and may refuse it; `log_by_script` runs when it closes.
 */
const stream = z.strictObject({
  /** Shown in logs and as `ctx.route`; default `stream#<index>`. */
  name: z.string().min(1).optional(),
  address,
  upstream: z.string(),
  tls: listenerTls.optional(),
  tenant: z.string().default('default'),
  access_by_script: z.string().optional(),
  log_by_script: z.string().optional(),
  /** Closed after this long without data either way. Default 10m (nginx stream proxy_timeout). */
  idle_timeout: duration.default(600_000),
  /** TLS streams: the client's handshake must finish within this. Default 10s. */
  handshake_timeout: duration.default(10_000),
});

export const configSchema = z
  .strictObject({
    workers: z.union([z.literal('auto'), z.number().int().min(1).max(256)]).default(1),
    listen: z.array(listener).min(1, 'at least one listener is needed'),
    admin: z.strictObject({ address, token: z.string().min(1, 'an empty admin token would turn authentication off: give a token, or remove the key').optional() }).optional(),
    limits: limits.prefault({}),
    /**
     * The Via header a proxy must add to what it forwards (RFC 9110 §7.6.3), both ways:
     * `Via: <protocol the message came in with> <name>` after any Via already there. `true`
     * (default) names the proxy `scriptgate`, a string names it so (a pseudonym token), `false`
     * adds none (nginx's behaviour).
     */
    via: z
      .union([z.boolean(), z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/, 'via: a name made of token characters, e.g. edge-1')])
      .default(true)
      .transform((v) => (v === true ? 'scriptgate' : v === false ? undefined : v)),
    log: z
      .strictObject({
        level: logLevel.default('info'),
        /** `true`/`false`, or `{ fields, file, syslog }` (src/observability/access-log.ts). */
        access_log: z.union([z.boolean(), accessLogOptions]).default(true),
      })
      .prefault({})
      // `access_log` stays a boolean for the rest of the code; the object form lands in `access_log_options`.
      .transform(({ access_log, ...rest }) => ({
        ...rest,
        access_log: typeof access_log === 'boolean' ? access_log : access_log.enabled,
        access_log_options: typeof access_log === 'boolean' ? undefined : access_log,
      })),
    /** OpenTelemetry tracing (src/observability/tracing.ts); absent = off, at no cost. */
    tracing: tracing.optional(),
    /** Hot reload: watch the config file and script folders (debounced); SIGHUP and POST /reload always work. */
    reload: z.strictObject({ watch: z.boolean().default(true), debounce: duration.default(200) }).prefault({}),
    /** How long a graceful stop (SIGTERM, SIGQUIT, an upgrade's old process) waits for running requests before it cuts them (nginx's worker_shutdown_timeout). */
    shutdown_timeout: duration.default(30_000),
    upstreams: z.record(z.string(), upstream).default({}),
    tenants: z.record(z.string(), tenant).default({}),
    /** `ctx.shared(name)` dicts (src/sandbox/shared-store.ts): each tenant gets its own instance of each, shared by all workers. */
    shared_dicts: z
      .record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'dict names are 1-64 characters of A-Z a-z 0-9 _ . -'), z.strictObject({ capacity: z.number().int().min(1).max(10_000_000).default(10_000) }))
      .default({}),
    routes: z.array(route).min(1, 'at least one route is needed'),
    /** TCP stream listeners (src/core/stream-listener.ts). */
    streams: z.array(stream).default([]),
  });

/**
 * Checks between fields (a route naming an unknown upstream or tenant, duplicate names). Runs on
 * the raw parsed document even when the schema found other problems, so an operator sees every
 * problem in one go. Returns `[path, message]` pairs.
 */
export function crossCheck(raw: unknown): Array<[Array<string | number>, string]> {
  const out: Array<[Array<string | number>, string]> = [];
  const obj = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
  const cfg = obj(raw);
  const upstreams = obj(cfg.upstreams);
  const tenants = obj(cfg.tenants);
  const routes = Array.isArray(cfg.routes) ? cfg.routes : [];
  const names = new Set<string>();
  routes.forEach((r: unknown, i) => {
    const route = obj(r);
    if (typeof route.upstream === 'string' && !Object.hasOwn(upstreams, route.upstream)) out.push([['routes', i, 'upstream'], `unknown upstream ${JSON.stringify(route.upstream)}`]);
    if (typeof route.tenant === 'string' && route.tenant !== 'default' && !Object.hasOwn(tenants, route.tenant)) out.push([['routes', i, 'tenant'], `unknown tenant ${JSON.stringify(route.tenant)}`]);
    if (typeof route.name === 'string') {
      if (names.has(route.name)) out.push([['routes', i, 'name'], `duplicate route name ${JSON.stringify(route.name)}`]);
      names.add(route.name);
    }
  });
  const admin = obj(cfg.admin);
  if (typeof admin.address === 'string' && admin.token === undefined) {
    const host = admin.address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    if (!/^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(host)) {
      out.push([['admin', 'address'], `admin on a non-loopback address (${admin.address}) needs admin.token`]);
    }
  }
  (Array.isArray(cfg.listen) ? cfg.listen : []).forEach((l: unknown, i) => {
    const tls = obj(obj(l).tls);
    if ((tls.verify_client === 'on' || tls.verify_client === 'optional') && typeof tls.client_ca !== 'string') {
      out.push([['listen', i, 'tls', 'verify_client'], `verify_client ${tls.verify_client} needs tls.client_ca`]);
    }
  });
  const addrs = new Set<string>();
  (Array.isArray(cfg.listen) ? cfg.listen : []).forEach((l: unknown, i) => {
    const a = obj(l).address;
    if (typeof a !== 'string') return;
    if (addrs.has(a)) out.push([['listen', i, 'address'], `address ${a} is listed twice`]);
    addrs.add(a);
  });
  // The admin listener cannot share a proxy listener's address (start would fail after `check` passed).
  const adminAddress = obj(cfg.admin).address;
  if (typeof adminAddress === 'string' && !/:0$/.test(adminAddress) && addrs.has(adminAddress)) out.push([['admin', 'address'], `address ${adminAddress} is already used by a listener`]);
  const streamNames = new Set<string>();
  (Array.isArray(cfg.streams) ? cfg.streams : []).forEach((v: unknown, i) => {
    const s = obj(v);
    if (typeof s.upstream === 'string' && !Object.hasOwn(upstreams, s.upstream)) out.push([['streams', i, 'upstream'], `unknown upstream ${JSON.stringify(s.upstream)}`]);
    if (typeof s.tenant === 'string' && s.tenant !== 'default' && !Object.hasOwn(tenants, s.tenant)) out.push([['streams', i, 'tenant'], `unknown tenant ${JSON.stringify(s.tenant)}`]);
    if (typeof s.name === 'string') {
      if (streamNames.has(s.name)) out.push([['streams', i, 'name'], `duplicate stream name ${JSON.stringify(s.name)}`]);
      streamNames.add(s.name);
    }
    const a = s.address;
    if (typeof a === 'string' && !/:0$/.test(a)) {
      if (addrs.has(a)) out.push([['streams', i, 'address'], `address ${a} is already used by another listener`]);
      addrs.add(a);
    }
    const tls = obj(s.tls);
    if ((tls.verify_client === 'on' || tls.verify_client === 'optional') && typeof tls.client_ca !== 'string') {
      out.push([['streams', i, 'tls', 'verify_client'], `verify_client ${tls.verify_client} needs tls.client_ca`]);
    }
  });
  return out;
}

/** The config as the rest of scriptgate sees it: defaults filled in, durations in ms, sizes in bytes. */
export type Config = z.output<typeof configSchema>;
/** What an operator writes. */
export type ConfigInput = z.input<typeof configSchema>;
export type RouteConfig = Config['routes'][number];
export type UpstreamConfig = Config['upstreams'][string];
export type TenantConfig = Config['tenants'][string];
export type ListenerConfig = Config['listen'][number];
export type LimitsConfig = Config['limits'];
export type ListenerTlsConfig = NonNullable<ListenerConfig['tls']>;
export type StreamConfig = Config['streams'][number];
