/**
 * The access log: one line per finished request, written by the exchange when the response is
 * closed. Config `log.access_log`: `true` (default) writes the default fields to the process log
 * (stdout); `false` writes nothing; an object chooses `fields`, and sends the lines to a `file`
 * (a pino destination, appended, buffered) and/or to `syslog` (RFC 5424 over UDP or TCP, see
 * syslog.ts) instead of stdout. Sinks are cached by their options, so a reload with the same
 * options keeps the same file and socket.
 *
 * Fields (`ACCESS_FIELDS`), plus `request_header:<name>` and `response_header:<name>`. The log
 * phase's own `ctx.log` lines are separate lines carrying the same `reqId` (join on it).
 *
 * @example
 *   log: { access_log: { fields: [reqId, method, path, status, ms, "request_header:user-agent"], file: logs/access.log } }
 */
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import { boundedDestination, onFlush } from './logger.ts';
import { createSyslogWriter, type Facility } from './syslog.ts';
import { accessLogDropped } from './metrics.ts';

/** The fields written when `fields` is not configured (the historical access line). */
export const DEFAULT_ACCESS_FIELDS = ['reqId', 'method', 'path', 'status', 'bytes', 'ms', 'route', 'upstream', 'error'] as const;

/** Every plain field name an operator may list in `log.access_log.fields`. */
export const ACCESS_FIELDS = [
  ...DEFAULT_ACCESS_FIELDS,
  'bytes_in',
  'tenant',
  'client_ip',
  'client_port',
  'host',
  'scheme',
  'protocol',
  'user_agent',
  'referer',
  'upstream_ms',
  'retries',
  'trace_id',
  'generation',
] as const;
export type AccessField = (typeof ACCESS_FIELDS)[number];

const KNOWN = new Set<string>(ACCESS_FIELDS);
/** True for a valid `fields` entry. */
export function isAccessField(name: string): boolean {
  return KNOWN.has(name) || /^(request|response)_header:[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name);
}

/** `log.access_log` when given as an object (schema.ts). */
export interface AccessLogOptions {
  enabled: boolean;
  fields?: string[];
  file?: string;
  syslog?: { address: string; protocol: 'udp' | 'tcp'; facility: Facility; app_name: string };
}

/** The default fields: the exchange builds exactly this object for every line. */
export interface AccessFacts {
  reqId: string;
  method: string | undefined;
  path: string | undefined;
  status: number;
  bytes: number;
  ms: number;
  route: string | undefined;
  upstream: string | undefined;
  error?: string;
}

/** What the other fields are taken from; built only when `fields` is configured. */
export interface AccessExtras {
  bytesIn: number;
  tenant: string | undefined;
  clientIp: string | undefined;
  clientPort: number | undefined;
  host: string | undefined;
  scheme: string;
  httpVersion: string;
  requestHeaders: Record<string, string | string[] | undefined>;
  /** Flat `[name, value, …]` as sent to the client. */
  responseHeaders: string[];
  upstreamMs: number;
  retries: number;
  traceId: string | undefined;
  generation: number;
}

/** The extras an access line takes from the request itself (the same for a proxied request and a WebSocket). */
export function requestExtras(req: IncomingMessage, scheme: string): Pick<AccessExtras, 'host' | 'scheme' | 'httpVersion' | 'requestHeaders'> {
  return { host: (req.headers[':authority'] as string | undefined) ?? req.headers.host, scheme, httpVersion: req.httpVersion, requestHeaders: req.headers };
}

/** Where a generation's access lines go; `fields` undefined = the default line. */
export interface AccessSink {
  logger: Logger;
  fields: readonly string[] | undefined;
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

/** The line's object for the configured `fields` (absent values are left out). */
export function accessLine(fields: readonly string[], f: AccessFacts, x: AccessExtras): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of fields) {
    let v: unknown;
    switch (name) {
      case 'bytes_in': v = x.bytesIn; break;
      case 'tenant': v = x.tenant; break;
      case 'client_ip': v = x.clientIp; break;
      case 'client_port': v = x.clientPort; break;
      case 'host': v = x.host; break;
      case 'scheme': v = x.scheme; break;
      case 'protocol': v = `HTTP/${x.httpVersion}`; break;
      case 'user_agent': v = headerValue(x.requestHeaders['user-agent']); break;
      case 'referer': v = headerValue(x.requestHeaders.referer); break;
      case 'upstream_ms': v = x.upstreamMs >= 0 ? Math.round(x.upstreamMs * 1000) / 1000 : undefined; break;
      case 'retries': v = x.retries; break;
      case 'trace_id': v = x.traceId; break;
      case 'generation': v = x.generation; break;
      default:
        if (name.startsWith('request_header:')) v = headerValue(x.requestHeaders[name.slice(15).toLowerCase()]);
        else if (name.startsWith('response_header:')) {
          const want = name.slice(16).toLowerCase();
          for (let i = 0; i < x.responseHeaders.length; i += 2) if (x.responseHeaders[i] === want) v = v === undefined ? x.responseHeaders[i + 1] : `${v as string}, ${x.responseHeaders[i + 1]}`;
        } else v = (f as unknown as Record<string, unknown>)[name];
    }
    if (v !== undefined && v !== '') out[name] = v;
  }
  return out;
}

const sinks = new Map<string, AccessSink>();
/** Access-log files open in this process (reopened by `reopenAccessLogs`). */
const openFiles: Array<{ reopen(): void; fd: number; once(event: 'ready', fn: () => void): unknown }> = [];

/**
 * Resolves once every access-log file has been opened (at most after `timeoutMs`): a graceful stop
 * waits for it before its last flush, else the line of a request drained just after the file was
 * first needed is lost (its file still opening).
 */
export function whenAccessLogsReady(timeoutMs = 1000): Promise<void> {
  const waiting = openFiles.filter((f) => f.fd < 0).map((f) => new Promise<void>((r) => f.once('ready', () => r())));
  if (waiting.length === 0) return Promise.resolve();
  return Promise.race([Promise.all(waiting).then(() => undefined), new Promise<void>((r) => setTimeout(r, timeoutMs).unref())]);
}

/**
 * Reopens every access-log file by its path (after logrotate moved it away): SIGUSR1, as
 * `nginx -s reopen`, and every reload. Lines buffered so far go to the old file.
 */
export function reopenAccessLogs(): void {
  for (const f of openFiles) f.reopen();
}
const defaults = new WeakMap<Logger, AccessSink>();
const stdoutLoggers = new WeakMap<Logger, Logger>();

/**
 * The logger access lines written to the process log go through: a child of `logger` at level
 * info whatever `log.level` says (an error-log level does not switch the access log off, as in
 * nginx; `access_log: false` does), except `silent`, which silences everything. Made once per logger.
 */
export function accessLogger(logger: Logger): Logger {
  if (logger.level === 'silent') return logger;
  let l = stdoutLoggers.get(logger);
  if (!l) stdoutLoggers.set(logger, (l = logger.child({}, { level: 'info' })));
  return l;
}

/**
 * The sink for a generation's `log.access_log` options (undefined options = `true`): cached per
 * options, so building it happens once per distinct config. `configFile` resolves a relative `file`.
 */
export function accessSink(options: AccessLogOptions | undefined, logger: Logger, configFile: string): AccessSink {
  if (!options || (!options.file && !options.syslog)) {
    if (!options?.fields) {
      let s = defaults.get(logger);
      if (!s) defaults.set(logger, (s = { logger: accessLogger(logger), fields: undefined }));
      return s;
    }
  }
  const file = options.file ? path.resolve(path.dirname(configFile), options.file) : undefined;
  const key = JSON.stringify([options.fields, file, options.syslog]);
  let sink = sinks.get(key);
  if (sink) return sink;
  let target: Logger = accessLogger(logger);
  if (file || options.syslog) {
    const streams: pino.StreamEntry[] = [];
    if (file) {
      const dest = boundedDestination(file);
      onFlush(() => dest.flushSync());
      openFiles.push(dest as unknown as (typeof openFiles)[number]);
      streams.push({ stream: dest });
    }
    if (options.syslog) {
      const s = options.syslog;
      streams.push({ stream: createSyslogWriter({ address: s.address, protocol: s.protocol, facility: s.facility, appName: s.app_name, onDrop: (n) => accessLogDropped.inc(n) }) });
    }
    target = pino(
      { level: 'info', base: logger.bindings(), timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } },
      streams.length === 1 ? streams[0]!.stream : pino.multistream(streams),
    );
  }
  sink = { logger: target, fields: options.fields };
  sinks.set(key, sink);
  return sink;
}

/**
 * Writes one access line where the generation's `log.access_log` sends it: the default line to the
 * process log, or the configured `fields` (built from `extras()`, called only then) to stdout, a
 * file or syslog.
 */
export function writeAccessLine(options: AccessLogOptions | undefined, logger: Logger, configFile: string, facts: AccessFacts, extras: () => AccessExtras): void {
  const sink = accessSink(options, logger, configFile);
  if (!sink.fields) sink.logger.info(facts, 'access');
  else sink.logger.info(accessLine(sink.fields, facts, extras()), 'access');
}
