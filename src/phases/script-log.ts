/**
 * Writes a script's `ctx.log.*` lines into the request's pino logger. Runs on the host right after
 * the crossing that collected them returns (or after a log flush). Default: the child logger is
 * created on the first line only, with `tenant` and `route` bindings (the request logger already
 * has reqId); a script's field named like one of those or pino's own keys (`time`, `level`,
 * `msg`, `phase`…) is kept under `field_<name>` (`field_time`) rather than overwriting it.
 */
import type { Logger } from 'pino';
import type { WireLog } from '../sandbox/wire.ts';
import { TENANT_FILENAME } from '../compile/compile-tenant.ts';
import type { SourceMapper } from '../compile/source-mapper.ts';

const LEVELS = ['debug', 'info', 'warn', 'error'] as const;
const RESERVED = new Set(['tenant', 'route', 'reqId', 'level', 'time', 'msg', 'pid', 'hostname', 'phase']);

export class ScriptLogSink {
  readonly #base: Logger | (() => Logger);
  readonly #tenant: string;
  readonly #route: string;
  readonly #mapper: SourceMapper | undefined;
  #child: Logger | undefined;

  /**
   * `base` may be a function making the request logger (called on the first line only). With
   * `mapper`, a message holding a stack of the tenant bundle (`console.error(err)`) names the
   * scripts' own file:line:column.
   */
  constructor(base: Logger | (() => Logger), tenant: string, route: string, mapper?: SourceMapper) {
    this.#base = base;
    this.#tenant = tenant;
    this.#route = route;
    this.#mapper = mapper;
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
    for (const [level, msg, fields] of entries) {
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
  }
}
