/**
 * Writes a script's `ctx.log.*` lines into the request's pino logger. Runs on the host right after
 * the crossing that collected them returns (or after a log flush). Default: the child logger is
 * created on the first line only, with `tenant` and `route` bindings (the request logger already
 * has reqId); a script's field named like one of those or pino's own keys (`time`, `level`,
 * `msg`, `phase`…) is kept under `field_<name>` (`field_time`) rather than overwriting it.
 * A tenant's lines are bounded by its `log_bytes_per_s` (`LogRate`): past it they are dropped and
 * counted (scriptgate_script_log_dropped_total), with one warning line per 10 s, so one tenant's
 * log flood neither fills the process's log buffer nor delays other tenants' lines.
 */
import type { Logger } from 'pino';
import type { WireLog } from '../sandbox/wire.ts';
import { TENANT_FILENAME } from '../compile/compile-tenant.ts';
import type { SourceMapper } from '../compile/source-mapper.ts';
import { scriptLogDropped } from '../observability/metrics.ts';

const LEVELS = ['debug', 'info', 'warn', 'error'] as const;
/** How often a tenant's dropped lines are reported (ms). */
const DROP_REPORT_MS = 10_000;

/**
 * A tenant's script-log byte rate: a bucket that holds one second's worth and refills
 * continuously. Default: created per tenant sandbox (per worker process) on its first line.
 */
export class LogRate {
  readonly perSecond: number;
  #tokens: number;
  #at = performance.now();
  #dropped = 0;
  #reportedAt = -Infinity;

  constructor(perSecond: number) {
    this.perSecond = perSecond;
    this.#tokens = perSecond;
  }

  /** Takes `bytes` from the bucket; false (and the line counted as dropped) when it has not that much. */
  take(bytes: number): boolean {
    if (this.perSecond <= 0) return true;
    const now = performance.now();
    this.#tokens = Math.min(this.perSecond, this.#tokens + ((now - this.#at) * this.perSecond) / 1000);
    this.#at = now;
    if (this.#tokens >= bytes) {
      this.#tokens -= bytes;
      return true;
    }
    this.#dropped++;
    return false;
  }

  /** Lines dropped since the last report, when a report is due (at most one per 10 s), else 0. */
  due(): number {
    const now = performance.now();
    if (this.#dropped === 0 || now - this.#reportedAt < DROP_REPORT_MS) return 0;
    const n = this.#dropped;
    this.#dropped = 0;
    this.#reportedAt = now;
    return n;
  }
}

const rates = new WeakMap<object, LogRate>();

/** The LogRate of `owner` (a tenant sandbox), made on first use with `perSecond`. */
export function logRateOf(owner: object, perSecond: number): LogRate {
  let r = rates.get(owner);
  if (!r) rates.set(owner, (r = new LogRate(perSecond)));
  return r;
}
const RESERVED = new Set(['tenant', 'route', 'reqId', 'level', 'time', 'msg', 'pid', 'hostname', 'phase']);

export class ScriptLogSink {
  readonly #base: Logger | (() => Logger);
  readonly #tenant: string;
  readonly #route: string;
  readonly #mapper: SourceMapper | undefined;
  readonly #rate: LogRate | undefined;
  #child: Logger | undefined;

  /**
   * `base` may be a function making the request logger (called on the first line only). With
   * `mapper`, a message holding a stack of the tenant bundle (`console.error(err)`) names the
   * scripts' own file:line:column.
   */
  constructor(base: Logger | (() => Logger), tenant: string, route: string, mapper?: SourceMapper, rate?: LogRate) {
    this.#base = base;
    this.#tenant = tenant;
    this.#route = route;
    this.#mapper = mapper;
    this.#rate = rate;
  }

  get logger(): Logger {
    if (this.#child) return this.#child;
    const base = typeof this.#base === 'function' ? this.#base() : this.#base;
    // A logger made by the core may already carry tenant and route: add only what it lacks (a key
    // bound twice is written twice in the JSON line).
    const bound = base.bindings() as { tenant?: unknown; route?: unknown };
    const add: Record<string, string> = {};
    if (bound.tenant !== this.#tenant) add.tenant = this.#tenant;
    if (bound.route !== this.#route) add.route = this.#route;
    this.#child = add.tenant === undefined && add.route === undefined ? base : base.child(add);
    return this.#child;
  }

  emit(entries: readonly WireLog[], phase: string): void {
    const log = this.logger;
    const rate = this.#rate;
    for (const [level, msg, fields] of entries) {
      if (rate && !rate.take(msg.length + fields.length)) {
        scriptLogDropped.inc({ tenant: this.#tenant });
        continue;
      }
      const obj: Record<string, unknown> = {};
      if (fields) {
        try {
          for (const [k, v] of Object.entries(JSON.parse(fields) as Record<string, unknown>)) obj[RESERVED.has(k) ? `field_${k}` : k] = v;
        } catch {
          /* fields were checked inside the isolate; ignore anything odd */
        }
      }
      obj.phase = phase;
      const text = this.#mapper && msg.includes(TENANT_FILENAME) ? this.#mapper.rewriteStack(msg) : msg;
      log[LEVELS[level] ?? 'info'](obj, text);
    }
    const dropped = rate?.due() ?? 0;
    if (dropped) log.warn({ dropped, logBytesPerS: rate!.perSecond }, `tenant ${this.#tenant}: ${dropped} script log lines dropped over its log_bytes_per_s`);
  }
}
