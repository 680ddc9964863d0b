/**
 * One tenant's isolate: created at generation build (async, off the event loop as far as
 * isolated-vm allows), called synchronously per phase, recreated lazily
 * (synchronously, ~2–3 ms) on the next call after memory exhaustion disposed it, disposed with its
 * generation. Holds cached References to the bootstrap's entry points (never looked up per call)
 * and accounts the tenant's CPU time from `iso.cpuTime` deltas.
 *
 * `cpu_ms` is a CPU-time limit per call, as workerd's is: a call that used more than cpu_ms of the
 * isolate's CPU fails, and isolated-vm's wall-clock timeout of WALL_FACTOR × cpu_ms stops one that
 * never returns. A call that was merely descheduled on a busy host (wall time over cpu_ms, little
 * CPU) is not cut off at cpu_ms, so a loaded machine does not turn healthy requests into 500s.
 *
 * `call()` returns the entry point's primitive result or throws a ProxyError:
 * PRX_ERR_SCRIPT_TIMEOUT (isolate kept), PRX_ERR_SCRIPT_MEMORY (isolate dropped; `epoch` moves on,
 * so sessions whose state lived in the old isolate know it is gone).
 *
 * @example
 *   const sb = await TenantSandbox.create({ bundle, memoryMb: 64, cpuMs: 50, routes, upstreams, logger });
 *   const json = sb.call('req', [sid, init], keys, [0, 1]);
 */
import { randomBytes } from 'node:crypto';
import ivm from 'isolated-vm';
import type { Logger } from 'pino';
import { ProxyError } from '../errors.ts';
import { TENANT_FILENAME, type TenantBundle } from '../compile/compile-tenant.ts';
import { SourceMapper } from '../compile/source-mapper.ts';
import { BOOTSTRAP_FILENAME, bootstrapSource } from './bootstrap-source.ts';
import { fromLimit, fromWireError, scriptFile, type ScriptFiles } from './script-error.ts';
import { displayPath } from '../compile/display-path.ts';
import type { WireError, WireRoute } from './wire.ts';
import type { SharedStore } from './shared-store.ts';

export type EntryName = 'req' | 'bal' | 'res' | 'body' | 'rs' | 'flush' | 'free' | 'where' | 'live' | 'broken' | 'preload';
type Primitive = string | number | boolean | null;
const ENTRIES: readonly EntryName[] = ['req', 'bal', 'res', 'body', 'rs', 'flush', 'free', 'where', 'live', 'broken', 'preload'];
/** How long the built-ins a tenant names may take to load at isolate build (not a request's cpu_ms). */
const PRELOAD_TIMEOUT_MS = 10_000;

/**
 * The lazily loaded built-ins a tenant's bundle names, for `preload`: 'url' (URL, URLSearchParams,
 * atob, btoa) and 'hash' (ctx.crypto). A name only reached dynamically still loads on first use.
 */
function builtinsNamed(code: string): string {
  const groups: string[] = [];
  if (/\b(?:URL|URLSearchParams|atob|btoa)\b/.test(code)) groups.push('url');
  if (/\bcrypto\b/.test(code)) groups.push('hash');
  return groups.join(',');
}

export interface TenantSandboxOptions {
  bundle: TenantBundle;
  memoryMb: number;
  cpuMs: number;
  /** CPU the tenant may use per second (leaky bucket of one second's worth); default 500. */
  cpuBudgetMsPerS?: number;
  /** Bytes of script log lines per second the host writes for this tenant (0 = no limit; default 0). */
  logBytesPerS?: number;
  /** Indexed like config.routes; null for routes of other tenants or without scripts. */
  routes: Array<WireRoute | null>;
  /** Names of configured upstreams a script may choose. */
  upstreams: string[];
  /** The tenant's `env` (ctx.env); default none. */
  env?: Record<string, string>;
  /** The instance's shared dicts (`ctx.shared`); none declared when absent. */
  shared?: SharedStore;
  logger: Logger;
}

/** A tenant bundle that loads but cannot be installed (no default export, top-level throw). */
export class InstallError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(problems.join('\n'));
    this.problems = problems;
  }
}

/**
 * V8 code cache per compiled bundle: a reload that reuses a tenant's bundle (compileTenant's cache)
 * also skips V8's parse/compile of it. Freed with the bundle (never released by a generation).
 */
const codeCache = new WeakMap<TenantBundle, ivm.ExternalCopy<ArrayBuffer>>();
/** V8 code cache of the bootstrap (the same source for every isolate of the process): made by the first isolate. */
let bootCache: { source: string; data: ivm.ExternalCopy<ArrayBuffer> } | undefined;

/** The isolate's `__sgRandom(n)`: n bytes (0..65536, checked again inside) of the host's CSPRNG as latin1. */
function randomLatin1(n: unknown): string {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65536) throw new RangeError('random byte count must be an integer from 0 to 65536');
  return randomBytes(n).toString('latin1');
}

/** Compile options for the bootstrap: with its code cache once one exists. */
function bootOptions(source: string): ivm.ScriptInfo {
  return bootCache?.source === source ? { filename: BOOTSTRAP_FILENAME, cachedData: bootCache.data } : { filename: BOOTSTRAP_FILENAME, produceCachedData: true };
}

function keepBootCache(source: string, script: ivm.Script): void {
  const produced = (script as ivm.Script & ivm.CachedDataResult).cachedData;
  if (produced && bootCache?.source !== source) bootCache = { source, data: produced };
}

/** The wall-clock backstop of a call, as a multiple of cpu_ms. */
export const WALL_FACTOR = 2;
/**
 * CPU a call may use beyond cpu_ms before it is failed afterwards: a garbage collection of the
 * isolate's heap runs inside whichever call triggers it and was seen to take 60–80 ms for trivial
 * scripts under load (3 in 227k calls). A call that never returns is still stopped by the backstop.
 */
const GC_ALLOWANCE_NS = 50_000_000n;
/** A log batch may run cpu_ms per request it carries, but stalls the event loop at most this long (ms). */
const MAX_BATCH_WALL_MS = 1000;

/** What an entry point returns when its result left through `__sgOut` (bootstrap/main.ts). */
const LONG_MARKER = '\u0000';

interface Live {
  iso: ivm.Isolate;
  context: ivm.Context;
  refs: Record<EntryName, ivm.Reference<(...args: Primitive[]) => unknown>>;
  cpuSeen: bigint;
  /**
   * Entry points that returned at least once in this isolate. A first call that returned is not
   * failed afterwards for its CPU: it compiles the bootstrap's code paths, and on a loaded host
   * that was seen to take over 100 ms, turning the first requests after a reload into 500s. The
   * wall-clock backstop (2 × cpu_ms) still stops a first call that never returns.
   */
  warm: Set<EntryName>;
}

export class TenantSandbox implements ScriptFiles {
  readonly tenant: string;
  readonly scriptsDir: string;
  readonly mapper: SourceMapper;
  readonly cpuMs: number;
  readonly memoryMb: number;
  /** Increments each time the isolate is (re)created. */
  epoch = 0;
  /** Total CPU nanoseconds the tenant's isolate used (all isolates of this sandbox). */
  cpuNs = 0n;
  calls = 0;
  recreations = 0;
  /** Requests refused because the tenant was over its CPU budget. */
  throttled = 0;
  readonly cpuBudgetMsPerS: number;
  /** log_bytes_per_s (phases/script-log.ts enforces it); 0 = no limit. */
  readonly logBytesPerS: number;
  /** CPU used and not yet drained by the budget (ns), as of `#debtAt` (performance.now() ms). */
  #debtNs = 0;
  #debtAt = 0;
  #overSince = 0;
  readonly #opts: TenantSandboxOptions;
  readonly #bootstrap: string;
  #live: Live | null = null;
  /** A long result handed over by the isolate's `__sgOut` callback during the current call. */
  #longResult: string | undefined;
  #disposed = false;
  /** cpu_ms in ns, as iso.cpuTime counts. */
  readonly #cpuLimitNs: bigint;

  private constructor(opts: TenantSandboxOptions, bootstrap: string) {
    this.#opts = opts;
    this.#bootstrap = bootstrap;
    this.tenant = opts.bundle.tenant;
    this.scriptsDir = opts.bundle.scriptsDir;
    this.mapper = new SourceMapper(opts.bundle.map, opts.bundle.scriptsDir);
    this.cpuMs = opts.cpuMs;
    this.#cpuLimitNs = BigInt(opts.cpuMs) * 1_000_000n;
    this.memoryMb = opts.memoryMb;
    this.cpuBudgetMsPerS = opts.cpuBudgetMsPerS ?? 500;
    this.logBytesPerS = opts.logBytesPerS ?? 0;
  }

  /**
   * Called before a request's first crossing: throws PRX_ERR_TENANT_THROTTLED (503) while the
   * tenant's CPU debt (per call the larger of isolate CPU time and the call's wall time, which is
   * how long the event loop was blocked) is above one second's budget. The debt drains at `cpu_budget_ms_per_s`, so an
   * offender gets calls spread evenly at its budget instead of bursts. The first refusal of a
   * stretch is logged.
   */
  admit(): void {
    if (this.#debtNs === 0) return;
    const now = performance.now();
    const drained = (now - this.#debtAt) * this.cpuBudgetMsPerS * 1000; // ns of CPU per ms of wall
    this.#debtAt = now;
    this.#debtNs = drained >= this.#debtNs ? 0 : this.#debtNs - drained;
    if (this.#debtNs <= this.cpuBudgetMsPerS * 1e6) {
      this.#overSince = 0;
      return;
    }
    this.throttled++;
    if (this.#overSince === 0) {
      this.#overSince = now;
      this.#opts.logger.warn({ tenant: this.tenant, code: 'PRX_ERR_TENANT_THROTTLED', budgetMsPerS: this.cpuBudgetMsPerS, debtMs: Math.round(this.#debtNs / 1e6) }, `tenant ${this.tenant} is over its CPU budget (cpu_budget_ms_per_s ${this.cpuBudgetMsPerS}); its requests get 503 until it is back under`);
    }
    throw new ProxyError('PRX_ERR_TENANT_THROTTLED', `tenant ${this.tenant} is over its CPU budget of ${this.cpuBudgetMsPerS} ms per second`);
  }

  #charge(ns: bigint): void {
    const now = performance.now();
    if (this.#debtNs > 0) {
      const drained = (now - this.#debtAt) * this.cpuBudgetMsPerS * 1000;
      this.#debtNs = drained >= this.#debtNs ? 0 : this.#debtNs - drained;
    }
    this.#debtAt = now;
    this.#debtNs += Number(ns);
  }

  /** Creates the isolate and installs the tenant. Throws InstallError with `file:line: message` problems. */
  static async create(opts: TenantSandboxOptions): Promise<TenantSandbox> {
    const sb = new TenantSandbox(opts, await bootstrapSource());
    sb.#live = await sb.#build();
    return sb;
  }

  #newIsolate(): ivm.Isolate {
    const { logger } = this.#opts;
    return new ivm.Isolate({
      memoryLimit: this.memoryMb,
      onCatastrophicError: (message: string) => logger.fatal({ tenant: this.tenant, message }, 'isolated-vm catastrophic error'),
    });
  }

  /** Async build (generation build): the expensive steps run off the event loop. */
  async #build(): Promise<Live> {
    const iso = this.#newIsolate();
    try {
      const context = await iso.createContext();
      const boot = await iso.compileScript(this.#bootstrap, bootOptions(this.#bootstrap));
      keepBootCache(this.#bootstrap, boot);
      const known = codeCache.get(this.#opts.bundle);
      const tenant = await iso.compileScript(this.#opts.bundle.code, known ? { filename: TENANT_FILENAME, cachedData: known } : { filename: TENANT_FILENAME, produceCachedData: true });
      const produced = (tenant as ivm.Script & ivm.CachedDataResult).cachedData;
      if (produced) codeCache.set(this.#opts.bundle, produced);
      // The tenant's own code (its top level, the built-ins it loads) runs on isolated-vm's thread,
      // off the event loop: a top-level loop or memory bomb in a reload does not stall the traffic.
      const { refs, install } = this.#boot(context, boot);
      try {
        await tenant.run(context, { timeout: this.#loadTimeout() });
      } catch (err) {
        install.release();
        throw new InstallError([this.#loadProblem(err)]);
      }
      this.#install(install);
      const groups = builtinsNamed(this.#opts.bundle.code);
      if (groups) {
        try {
          await refs.preload.apply(undefined, [groups], { timeout: PRELOAD_TIMEOUT_MS });
        } catch (err) {
          throw this.#preloadProblem(groups, err);
        }
      }
      return this.#ready(iso, context, refs);
    } catch (err) {
      if (!iso.isDisposed) iso.dispose();
      throw err;
    }
  }

  /** Sync rebuild (the next call after memory exhaustion), with V8's code cache when there is one. */
  #buildSync(): Live {
    const iso = this.#newIsolate();
    try {
      const context = iso.createContextSync();
      const boot = iso.compileScriptSync(this.#bootstrap, bootOptions(this.#bootstrap));
      keepBootCache(this.#bootstrap, boot);
      const known = codeCache.get(this.#opts.bundle);
      const info = known ? { filename: TENANT_FILENAME, cachedData: known } : { filename: TENANT_FILENAME };
      const tenant = iso.compileScriptSync(this.#opts.bundle.code, info);
      return this.#finish(iso, context, boot, tenant);
    } catch (err) {
      if (!iso.isDisposed) iso.dispose();
      throw err;
    }
  }

  /** Sync: runs the bootstrap, takes its entry References, runs the tenant bundle, installs, loads its built-ins. */
  #finish(iso: ivm.Isolate, context: ivm.Context, boot: ivm.Script, tenant: ivm.Script): Live {
    const { refs, install } = this.#boot(context, boot);
    try {
      tenant.runSync(context, { timeout: this.#loadTimeout() });
    } catch (err) {
      install.release();
      throw new InstallError([this.#loadProblem(err)]);
    }
    this.#install(install);
    const groups = builtinsNamed(this.#opts.bundle.code);
    if (groups) {
      try {
        refs.preload.applySync(undefined, [groups], { timeout: PRELOAD_TIMEOUT_MS });
      } catch (err) {
        throw this.#preloadProblem(groups, err);
      }
    }
    return this.#ready(iso, context, refs);
  }

  /** How long a tenant bundle's top level may run: 10 × cpu_ms, between 1 s and 10 s. */
  #loadTimeout(): number {
    return Math.min(Math.max(this.cpuMs * 10, 1000), 10_000);
  }

  #preloadProblem(groups: string, err: unknown): InstallError {
    return new InstallError([`${displayPath(this.scriptsDir)}:0: tenant ${this.tenant}: loading the built-ins its scripts use (${groups}) failed: ${(err as Error).message}`]);
  }

  /** The isolate, ready: a new epoch. */
  #ready(iso: ivm.Isolate, context: ivm.Context, refs: Live['refs']): Live {
    this.epoch++;
    return { iso, context, refs, cpuSeen: iso.cpuTime, warm: new Set() };
  }

  /** Sets the host callbacks, runs the bootstrap (our code) and takes its entry References, deleting its global. */
  #boot(context: ivm.Context, boot: ivm.Script): { refs: Live['refs']; install: ivm.Reference<(...a: string[]) => string> } {
    const shared = this.#opts.shared;
    const tenantName = this.tenant;
    // Host functions of a tenant context (taken and deleted from the global by the bootstrap before
    // any tenant code runs): primitives in, a primitive out; the tenant is bound here, on the host.
    const sharedCall = shared
      ? function sharedDictCall(op: number, dict: unknown, key: unknown, a: unknown, b: unknown, c: unknown) {
          return shared.call(tenantName, op, dict, key, a, b, c);
        }
      : function noSharedDicts() {
          throw new RangeError('no shared dicts are declared (shared_dicts in the config)');
        };
    context.global.setSync('__sgShared', new ivm.Callback(sharedCall));
    // crypto.getRandomValues / ctx.crypto.randomBytes: the host's CSPRNG, at most 64 KiB a call.
    context.global.setSync('__sgRandom', new ivm.Callback(randomLatin1));
    // Long results come back through this callback (see bootstrap/main.ts `viaHost`: isolated-vm
    // leaks the native copy of long strings returned from applySync).
    context.global.setSync('__sgOut', new ivm.Callback((s: unknown) => {
      this.#longResult = typeof s === 'string' ? s : undefined;
    }));
    boot.runSync(context, { timeout: 1000 });
    const bootRef = context.global.getSync('__sgBoot', { reference: true }) as ivm.Reference<Record<string, unknown>>;
    const refs = {} as Live['refs'];
    for (const name of ENTRIES) refs[name] = bootRef.getSync(name, { reference: true }) as Live['refs'][EntryName];
    const install = bootRef.getSync('install', { reference: true }) as ivm.Reference<(...a: string[]) => string>;
    bootRef.release();
    context.global.deleteSync('__sgBoot');
    return { refs, install };
  }

  /** Installs the routes' phase functions (after the tenant bundle ran); throws InstallError naming the script. */
  #install(install: ivm.Reference<(...a: string[]) => string>): void {
    const shared = this.#opts.shared;
    const problems = install.applySync(undefined, [JSON.stringify(this.#opts.routes), JSON.stringify(this.#opts.upstreams), this.tenant, JSON.stringify(shared?.names ?? []), JSON.stringify(this.#opts.env ?? {})], { timeout: 1000 });
    install.release();
    if (typeof problems === 'string' && problems) {
      const list = JSON.parse(problems) as Array<[string, string]>;
      throw new InstallError(list.map(([key, m]) => `${scriptFile(this, key)}:1: ${m}`));
    }
  }

  /** `file:line: message` for an error thrown while the tenant bundle's top level ran. */
  #loadProblem(err: unknown): string {
    const e = err as Error;
    const pos = typeof e?.stack === 'string' ? this.mapper.firstFrame(e.stack) : undefined;
    const where = pos ? `${pos.file}:${pos.line}` : `${displayPath(this.scriptsDir)}:0`;
    const message = e?.message ?? String(err);
    // A top level that ran out of time: say how long it had, and that it is a load-time limit.
    const limit = /timed out/i.test(message) ? ` (a script's top level may run ${this.#loadTimeout()} ms: 10 × cpu_ms, between 1 s and 10 s; do lasting work in the phase functions)` : '';
    return `${where}: the script failed while loading: ${message}${limit}`;
  }

  /**
   * Whether the script `key` may call `ctx.shared(...)` (its code mentions it; see
   * TenantBundle.sharedUsers). False when no shared dicts are declared.
   */
  mayUseShared(key: string): boolean {
    if (!this.#opts.shared) return false;
    const users = this.#opts.bundle.sharedUsers;
    return users === undefined || users.includes(key);
  }

  /**
   * Whether the isolate is up. Every disposal goes through `#drop()` (memory exhaustion surfaces as
   * a call's throw, which drops it), so this reads no native state: it runs on every crossing.
   */
  get alive(): boolean {
    return this.#live !== null;
  }

  /** Recreates a disposed isolate synchronously (the next call after memory exhaustion). */
  #ensure(): Live {
    const l = this.#live;
    if (l && !l.iso.isDisposed) return l;
    if (this.#disposed) throw new ProxyError('PRX_ERR_INTERNAL', `tenant ${this.tenant}: sandbox already disposed`);
    this.#drop();
    try {
      this.#live = this.#buildSync();
    } catch (err) {
      const reason = err instanceof InstallError ? err.problems.join('; ') : (err as Error).message;
      throw new ProxyError('PRX_ERR_SCRIPT_MEMORY', `tenant ${this.tenant}: isolate could not be recreated: ${reason}`, { cause: err });
    }
    this.recreations++;
    return this.#live;
  }

  #drop(): void {
    const l = this.#live;
    this.#live = null;
    if (!l) return;
    for (const r of Object.values(l.refs)) r.release();
    if (!l.iso.isDisposed) l.iso.dispose();
  }

  /**
   * Calls an entry point with primitive arguments. `keys`/`phases` name the scripts that may run,
   * for messages. `runs` is how many phase runs the call carries (a log batch: one per request):
   * a batch is stopped after cpu_ms per run (at least the single call's backstop, at most
   * MAX_BATCH_WALL_MS) and is not checked per run.
   */
  call(entry: EntryName, args: Primitive[], keys: ReadonlyArray<string | null>, phases: readonly number[], runs = 1): unknown {
    const live = this.#ensure();
    this.calls++;
    const t0 = performance.now();
    const timeout = runs === 1 ? this.cpuMs * WALL_FACTOR : Math.max(this.cpuMs * WALL_FACTOR, Math.min(this.cpuMs * runs, MAX_BATCH_WALL_MS));
    let used = 0n;
    let r: unknown;
    let returned = false;
    try {
      const ref = live.refs[entry];
      // A log batch's shared-dict writes share one LMDB commit (one per batch, not one per request).
      const shared = this.#opts.shared;
      r = entry === 'flush' && shared ? shared.writeBatch(() => ref.applySync(undefined, args, { timeout })) : ref.applySync(undefined, args, { timeout });
      returned = true;
    } catch (err) {
      throw this.#limitError(live, err, keys, phases, timeout);
    } finally {
      // A call that returned left its isolate alive (a disposal always surfaces as a throw).
      if (returned || !live.iso.isDisposed) {
        const now = live.iso.cpuTime;
        used = now - live.cpuSeen;
        this.cpuNs += used;
        live.cpuSeen = now;
        // A synchronous call blocks the event loop (every tenant's requests) for its wall time, so
        // the budget is charged the larger of CPU and wall time (they differ on a loaded machine).
        const wall = BigInt(Math.round((performance.now() - t0) * 1e6));
        this.#charge(wall > used ? wall : used);
      }
    }
    const long = r === LONG_MARKER ? this.#longResult : undefined;
    this.#longResult = undefined;
    const first = !live.warm.has(entry);
    if (first) live.warm.add(entry);
    if (runs === 1 && used > this.#cpuLimitNs + GC_ALLOWANCE_NS && !first) {
      throw fromLimit(this, keys, phases, 'PRX_ERR_SCRIPT_TIMEOUT', `used ${(Number(used) / 1e6).toFixed(1)} ms of CPU, more than tenant ${this.tenant}'s cpu_ms (${this.cpuMs} ms)`);
    }
    return r === LONG_MARKER ? long : r;
  }

  #limitError(live: Live, err: unknown, keys: ReadonlyArray<string | null>, phases: readonly number[], timeout: number): ProxyError {
    const message = (err as Error)?.message ?? String(err);
    if (live.iso.isDisposed || /memory limit|disposed/i.test(message)) {
      this.#drop();
      return fromLimit(this, keys, phases, 'PRX_ERR_SCRIPT_MEMORY', `exhausted tenant ${this.tenant}'s memory_mb (${this.memoryMb} MB); its isolate is recreated for the next request`);
    }
    if (/timed out/i.test(message)) {
      // The backstop is wall-clock: report the CPU the call really used, so contention on the host
      // (a descheduled thread) can be told apart from a script that spins.
      const usedMs = Number(live.iso.cpuTime - live.cpuSeen) / 1e6;
      let running: readonly number[] = phases;
      let inScript = true;
      try {
        const p = live.refs.where.applySync(undefined, [], { timeout: this.cpuMs * WALL_FACTOR });
        if (typeof p === 'number' && p >= 0) running = [p];
        else if (p === -1) inScript = false;
        // Cut off while a built-in loaded on first use (URL, the hashes): it stays half-initialised,
        // so the isolate is rebuilt for the next request (bootstrap/first-use-load.ts).
        if (live.refs.broken.applySync(undefined, [], { timeout: this.cpuMs * WALL_FACTOR }) === true) this.#drop();
      } catch {
        /* the phase stays unknown */
      }
      const reason = inScript
        ? `ran past tenant ${this.tenant}'s cpu_ms (${this.cpuMs} ms) and was stopped after ${timeout} ms (${usedMs.toFixed(1)} ms CPU used)`
        : `call was cut off after ${timeout} ms (tenant ${this.tenant}'s cpu_ms is ${this.cpuMs} ms) after the phase function had returned (${usedMs.toFixed(1)} ms CPU used: in a promise callback the script queued, or the host was overloaded)`;
      return fromLimit(this, keys, running, 'PRX_ERR_SCRIPT_TIMEOUT', reason, typeof (err as Error)?.stack === 'string' ? (err as Error).stack : '');
    }
    // The entry points catch whatever a phase function throws; what escapes the call is a promise
    // callback the script queued (V8 runs them as the call ends) that threw or rejected unhandled.
    const stack = typeof (err as Error)?.stack === 'string' ? (err as Error).stack! : '';
    const name = typeof (err as Error)?.name === 'string' ? (err as Error).name : 'Error';
    return fromWireError(this, keys, { k: 'S', p: phases[0] ?? 0, m: `${name}: ${message} (in a promise callback: phase scripts are synchronous)`, st: stack });
  }

  /** A script failure reported by the bootstrap, as a ProxyError. */
  scriptError(keys: ReadonlyArray<string | null>, e: WireError): ProxyError {
    return fromWireError(this, keys, e);
  }

  /** Number of requests whose state lives in the isolate (tests, stats). */
  liveRequests(): number {
    if (!this.alive) return 0;
    return this.call('live', [], [], []) as number;
  }

  /** The isolate's heap figures (about 5 µs: sample, do not call per request); undefined when it is down. */
  heapStatistics(): ivm.HeapStatistics | undefined {
    const l = this.#live;
    return l && !l.iso.isDisposed ? l.iso.getHeapStatisticsSync() : undefined;
  }

  dispose(): void {
    this.#disposed = true;
    this.#drop();
  }
}
