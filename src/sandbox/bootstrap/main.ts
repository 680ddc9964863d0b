/**
 * The trusted bootstrap: runs first in every tenant context, before the tenant's bundle, and
 * implements runtime-api on top of the wire format in ../wire.ts. It leaves one global, `__sgBoot`,
 * holding the entry points; the host takes References to them and deletes the global before any
 * tenant code runs, so scripts can reach none of them.
 *
 * Every entry point takes and returns primitives only. Results are JSON (or tagged strings for
 * body chunks) built and size-checked here, inside the host's timed call, so a hostile value
 * (infinite getter, 100 MB string) costs the tenant its timeout or memory, never the host.
 */
import { PHASE_ID, WIRE_LIMITS, type WireBalancerResult, type WireBodyEnvelope, type WireError, type WireFlushOutcome, type WireHeadResult, type WireLogRecord, type WireRequestResult, type WireRoute } from '../wire.ts';
import { Ctx, bodyToWire, type TenantFacts } from './context.ts';
import { BalancerView, setBalancer } from './balancer-view.ts';
import { describeError } from './errors.ts';
import { beginWriteBehind, declareDicts, settleWriteBehind } from './shared-dict.ts';
import { headerListDirty, headerListRaw } from './header-list.ts';
import { clearLogs, scriptConsole, takeLogs } from './log-buffer.ts';
import { installWebGlobals } from './web-globals.ts';
import { loadCutOff } from './first-use-load.ts';
import { scriptCrypto } from './script-crypto.ts';
import { currentPhase, ScriptResultError, setPhase, takeRefused } from './phase-guard.ts';
import {
  CHANGED_METHOD,
  CHANGED_PATH,
  CHANGED_QUERY,
  CHANGED_UPSTREAM,
  RequestState,
  responseFromRecord,
  type InstalledRoute,
} from './request-state.ts';

type PhaseFn = (...args: unknown[]) => unknown;

// Scripts' console.* goes to the request's log (log-buffer.ts), before any tenant code runs.
(globalThis as unknown as { console: unknown }).console = scriptConsole;
installWebGlobals();
// Not offered: WebAssembly's memory lives outside the heap memory_mb limits, and growing it is a
// native step the CPU limit cannot interrupt; SharedArrayBuffer serves only Atomics.wait.
delete (globalThis as { WebAssembly?: unknown }).WebAssembly;
delete (globalThis as { SharedArrayBuffer?: unknown }).SharedArrayBuffer;

const states = new Map<number, RequestState>();
let routes: Array<InstalledRoute | null> = [];
const tenant: TenantFacts = { name: '', upstreams: new Set(), env: Object.freeze({}) };
const jsonStringify = JSON.stringify;

/** The one final guard: whatever happened before, only a bounded primitive string leaves. */
function bounded(out: unknown, limit: number, phase: number): string {
  if (typeof out === 'string' && out.length <= limit) return out;
  const e: WireError = { k: 'R', p: phase, m: `result of ${limit} characters exceeded (or not a string)`, st: '' };
  return jsonStringify({ e });
}

function state(sid: number, init: string): RequestState {
  let s = states.get(sid);
  if (!s) {
    if (!init) throw new Error(`bootstrap: no state for request ${sid}`);
    s = new RequestState(sid, init, routes);
    states.set(sid, s);
  }
  return s;
}

function ctxOf(s: RequestState): Ctx {
  return (s.ctx ??= new Ctx(s, tenant)) as Ctx;
}

/** Calls one phase script with the phase guard set; rejects a Promise result (scripts are synchronous). */
function runPhase(s: RequestState, phase: number, a?: unknown, b?: unknown): unknown {
  const fn = s.route.fns[phase] as PhaseFn;
  setPhase(phase);
  const ret = phase === PHASE_ID.body_filter ? fn(ctxOf(s), a, b) : fn(ctxOf(s));
  const refused = takeRefused();
  if (refused) throw refused;
  if (ret !== undefined && ret !== null && typeof (ret as { then?: unknown }).then === 'function') {
    throw new ScriptResultError(`${s.route.keys[phase]} returned a Promise: phase scripts must be synchronous (no async/await)`);
  }
  return ret;
}

function install(routesJson: string, upstreamsJson: string, tenantName: string, dictsJson: string, envJson = '{}'): string {
  declareDicts(dictsJson ? (JSON.parse(dictsJson) as string[]) : []);
  const table = (globalThis as unknown as { __sgTenant?: { scripts?: Record<string, unknown> } }).__sgTenant;
  const scripts = table?.scripts ?? {};
  const problems: Array<[string, string]> = [];
  const wire = JSON.parse(routesJson) as Array<WireRoute | null>;
  routes = wire.map((r) => {
    if (!r) return null;
    const fns = r.s.map((key) => {
      if (key === null) return null;
      const fn = scripts[key];
      if (typeof fn !== 'function') {
        problems.push([key, `a phase script must \`export default\` a function (found ${fn === undefined ? 'no default export' : typeof fn})`]);
        return null;
      }
      const kind = Object.prototype.toString.call(fn).slice(8, -1);
      if (kind !== 'Function') {
        problems.push([key, `a phase script must be synchronous: its default export is an ${kind} (phases run to completion, with no await)`]);
        return null;
      }
      return fn as PhaseFn;
    });
    return { name: r.n, fns, keys: r.s, upstream: r.u, bodyLimit: r.b ?? -1 };
  });
  tenant.name = tenantName;
  tenant.upstreams = new Set(JSON.parse(upstreamsJson) as string[]);
  // No prototype: ctx.env.toString and friends read undefined, like any name the config does not set.
  tenant.env = Object.freeze(Object.assign(Object.create(null) as Record<string, string>, JSON.parse(envJson) as Record<string, string>));
  return problems.length ? jsonStringify(problems) : '';
}

function req(sid: number, init: string, body?: string): string {
  let phase: number = PHASE_ID.rewrite;
  let out: WireRequestResult = {};
  try {
    const s = state(sid, init);
    if (typeof body === 'string') s.body = body;
    const fns = s.route.fns;
    if (fns[PHASE_ID.rewrite]) runPhase(s, PHASE_ID.rewrite);
    if (!s.exit && fns[PHASE_ID.access]) {
      phase = PHASE_ID.access;
      runPhase(s, PHASE_ID.access);
    }
    if (s.exit) {
      out = { x: s.exit.status, xh: s.exit.headers, xb: s.exit.body };
      if (s.exit.binary) out.xbin = 1;
    } else {
      const c = s.changed;
      if (c & CHANGED_METHOD) out.m = s.method;
      if (c & CHANGED_PATH) out.p = s.path;
      if (c & CHANGED_QUERY) out.q = s.query;
      if (c & CHANGED_UPSTREAM) out.u = s.upstream;
      if (headerListDirty(s.headers)) out.h = headerListRaw(s.headers).join('\n');
      if (s.bodySet) out.bd = s.body ?? '';
    }
  } catch (e) {
    out = { e: describeError(e, phase) };
  }
  setPhase(-1);
  const l = takeLogs();
  if (l) out.l = l;
  for (const _k in out) {
    // A body set by a script was size-checked against script_body; JSON escapes at most 6 chars per byte.
    return bounded(jsonStringify(out), WIRE_LIMITS.requestResult + WIRE_LIMITS.logResultRoom + (out.bd ? 6 * out.bd.length : 0), phase);
  }
  return '';
}

/** balancer_by_script for one try; `record` is the balancer record of ../wire.ts. */
function bal(sid: number, init: string, record: string): string {
  let out: WireBalancerResult = {};
  try {
    const s = state(sid, init);
    const view = new BalancerView(record, tenant.upstreams);
    setBalancer(view);
    runPhase(s, PHASE_ID.balancer);
    if (view.chosenUpstream !== undefined) out.u = view.chosenUpstream;
    if (view.chosenAddress !== undefined) out.t = view.chosenAddress;
    if (view.chosenKey !== undefined) out.k = view.chosenKey;
  } catch (e) {
    out = { e: describeError(e, PHASE_ID.balancer) };
  }
  setBalancer(null);
  setPhase(-1);
  const l = takeLogs();
  if (l) out.l = l;
  for (const _k in out) return bounded(jsonStringify(out), WIRE_LIMITS.headResult + WIRE_LIMITS.logResultRoom, PHASE_ID.balancer);
  return '';
}

function res(sid: number, init: string, record: string): string {
  let out: WireHeadResult = {};
  try {
    const s = state(sid, init);
    const r = (s.response = responseFromRecord(record, false));
    runPhase(s, PHASE_ID.header_filter);
    if (r.statusChanged) out.s = r.status;
    if (headerListDirty(r.headers)) out.h = headerListRaw(r.headers).join('\n');
  } catch (e) {
    out = { e: describeError(e, PHASE_ID.header_filter) };
  }
  setPhase(-1);
  const l = takeLogs();
  if (l) out.l = l;
  for (const _k in out) return bounded(jsonStringify(out), WIRE_LIMITS.headResult + WIRE_LIMITS.logResultRoom, PHASE_ID.header_filter);
  return '';
}

/** body_filter on one chunk of request `s`: null = unchanged, else 't'/'b' + data, or 'j' + envelope JSON. */
function bodyOf(s: RequestState | undefined, sid: number, init: string, record: string, chunk: string, eof: boolean): string | null {
  const limit = chunk.length * WIRE_LIMITS.bodyFactor + WIRE_LIMITS.bodySlack;
  let tag: 't' | 'b' | null = null;
  let data = '';
  let err: WireError | undefined;
  try {
    if (!s) {
      s = state(sid, init);
      if (record) s.response = responseFromRecord(record, true);
    }
    const ret = runPhase(s, PHASE_ID.body_filter, chunk, eof);
    // The chunk handed back as it came is unchanged: its original bytes go on, so a body that is
    // not UTF-8 (binary, an unknown charset) survives a filter that only looks at it.
    if (ret !== undefined && ret !== null && ret !== chunk) {
      if (typeof ret !== 'string' && !(ret instanceof Uint8Array)) {
        throw new ScriptResultError(`${s.route.keys[PHASE_ID.body_filter]} returned ${typeof ret}: body_filter returns a string, a Uint8Array or nothing`);
      }
      if (ret.length > limit) {
        throw new ScriptResultError(`${s.route.keys[PHASE_ID.body_filter]} returned ${ret.length} characters/bytes for a ${chunk.length}-character chunk (limit ${WIRE_LIMITS.bodyFactor}× + ${WIRE_LIMITS.bodySlack})`);
      }
      const wire = bodyToWire(ret, 'body_filter', limit);
      tag = wire.binary ? 'b' : 't';
      data = wire.data;
    }
  } catch (e) {
    err = describeError(e, PHASE_ID.body_filter);
  }
  setPhase(-1);
  const l = takeLogs();
  if (!l && !err) {
    if (tag === null) return null;
    return bounded(tag + data, limit + 1, PHASE_ID.body_filter);
  }
  const env: WireBodyEnvelope = { r: err ? null : tag, d: err ? '' : data };
  if (l) env.l = l;
  if (err) env.e = err;
  return bounded(`j${jsonStringify(env)}`, limit + WIRE_LIMITS.headResult + WIRE_LIMITS.logResultRoom, PHASE_ID.body_filter);
}

function body(sid: number, init: string, record: string, chunk: string, eof: boolean): string | null {
  return bodyOf(undefined, sid, init, record, chunk, eof);
}

/**
 * header_filter (when the route has one; else the head is only recorded) and then, when `chunk` is
 * a string, body_filter on it: one crossing for a response whose head and first chunk arrived
 * together. Result: '' when nothing changed and nothing was logged; otherwise
 * `<n>:<head JSON of n characters, may be empty><body part as body() returns it, '' = unchanged>`.
 * A header_filter failure skips body_filter.
 */
function rs(sid: number, init: string, record: string, chunk: string | null, eof: boolean): string {
  let head = '';
  let s: RequestState | undefined;
  let failed = false;
  let out: WireHeadResult = {};
  try {
    s = state(sid, init);
    if (s.route.fns[PHASE_ID.header_filter]) {
      const r = (s.response = responseFromRecord(record, false));
      runPhase(s, PHASE_ID.header_filter);
      if (r.statusChanged) out.s = r.status;
      if (headerListDirty(r.headers)) out.h = headerListRaw(r.headers).join('\n');
    } else {
      s.response = responseFromRecord(record, true);
    }
  } catch (e) {
    out = { e: describeError(e, PHASE_ID.header_filter) };
    failed = true;
  }
  setPhase(-1);
  const l = takeLogs();
  if (l) out.l = l;
  for (const _k in out) {
    head = bounded(jsonStringify(out), WIRE_LIMITS.headResult + WIRE_LIMITS.logResultRoom, PHASE_ID.header_filter);
    break;
  }
  const b = failed || chunk === null || !s ? null : bodyOf(s, sid, '', '', chunk, eof);
  if (head === '' && b === null) return '';
  return `${head.length}:${head}${b ?? ''}`;
}

function flush(batchJson: string): string {
  const batch = JSON.parse(batchJson) as WireLogRecord[];
  const outcomes: WireFlushOutcome[] = [];
  beginWriteBehind();
  for (const rec of batch) {
    const sid = rec[0];
    if (rec.length === 1) {
      states.delete(sid);
      continue;
    }
    let err: WireError | 0 = 0;
    try {
      const s = state(sid, rec[1]);
      s.responseRecord = rec[11] ? `${rec[2]}\n${rec[11]}` : String(rec[2]);
      s.summary = {
        status: rec[2],
        bytesSent: rec[3],
        bytesReceived: rec[4],
        timings: Object.freeze({ total: rec[5], upstreamConnect: rec[6], upstreamHeader: rec[7], upstreamBody: rec[8] }),
        upstreamAddress: rec[9],
        error: rec[10],
      };
      if (s.route.fns[PHASE_ID.log]) runPhase(s, PHASE_ID.log);
    } catch (e) {
      err = describeError(e, PHASE_ID.log);
    }
    setPhase(-1);
    states.delete(sid);
    const l = takeLogs();
    if (l || err) outcomes.push([sid, l ?? [], err]);
  }
  settleWriteBehind();
  if (outcomes.length === 0) return '';
  return bounded(jsonStringify(outcomes), WIRE_LIMITS.flushResult + outcomes.length * WIRE_LIMITS.logResultRoom, PHASE_ID.log);
}

function free(sids: string): string {
  for (const sid of sids.split(',')) states.delete(Number(sid));
  return '';
}

/** Phase running when a call was cut off (timeout), -1 when none; resets the guard. */
function where(): number {
  const p = currentPhase();
  setPhase(-1);
  clearLogs();
  try {
    // A log batch cut off mid-way: its counts so far are written back (the host merges them).
    settleWriteBehind();
  } catch {
    /* the host refused (the dict is gone): those counts are lost with the batch */
  }
  return p;
}

function live(): number {
  return states.size;
}

/**
 * At isolate build, before any request (the host's generous timeout, not cpu_ms): loads the
 * built-ins the tenant's code names (`groups`: 'url' for URL/URLSearchParams/atob/btoa, 'hash' for
 * ctx.crypto's hashes), so that their 10-20 ms first load never lands in a timed request.
 */
function preload(groups: string): string {
  for (const g of groups.split(',')) {
    if (g === 'url') void (globalThis as unknown as { URL: unknown }).URL;
    else if (g === 'hash') scriptCrypto.createHmac('sha256', 'k').update('x').digest('hex');
  }
  return '';
}

/** After a timeout: true when it cut off a built-in's first-use load (the isolate must be rebuilt). */
function broken(): boolean {
  return loadCutOff();
}

/**
 * isolated-vm 5.0.4 leaks the native copy of every string over about 1 KiB that an `applySync`
 * returns (measured: ~66 KB of RSS per 64 KiB result, never freed), while strings handed to a host
 * Callback are freed. So a long result leaves through the `__sgOut` callback (inside the same
 * timed call, already size-checked) and the entry point returns the one-character marker instead.
 */
const hostOut = (globalThis as unknown as { __sgOut?: (s: string) => void }).__sgOut;
delete (globalThis as unknown as { __sgOut?: unknown }).__sgOut;
const LONG_RESULT = 1000;
const LONG_MARKER = '\u0000';
function viaHost<A extends unknown[]>(fn: (...a: A) => unknown): (...a: A) => unknown {
  if (!hostOut) return fn;
  return function longResultsViaHost(...a: A) {
    const r = fn(...a);
    if (typeof r === 'string' && r.length > LONG_RESULT) {
      hostOut(r);
      return LONG_MARKER;
    }
    return r;
  };
}

(globalThis as unknown as { __sgBoot: unknown }).__sgBoot = {
  install,
  req: viaHost(req),
  bal: viaHost(bal),
  res: viaHost(res),
  body: viaHost(body),
  rs: viaHost(rs),
  flush: viaHost(flush),
  free,
  where,
  live,
  broken,
  preload,
};
