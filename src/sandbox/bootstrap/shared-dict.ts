/**
 * Runs inside the isolate: `ctx.shared(name)`, an ngx.shared-style dictionary scoped to the tenant
 * and shared by all cluster workers. Every call is one synchronous host callback into the tenant's
 * SharedStore (src/sandbox/shared-store.ts, LMDB); the callback is the only host function in the
 * isolate, takes primitives only and has the tenant bound on the host side. The bootstrap takes it
 * from the global `__sgShared` before any tenant code runs and deletes that global.
 *
 * Default: only dicts declared in config (`shared_dicts`) exist; others throw a clear error. A dict
 * that is full refuses new keys (`set`/`add` return false, `incr` returns undefined).
 *
 * Write-behind during a log batch: the host runs a batch of log phases inside ONE write
 * transaction of the store, holding its cross-worker write lock (SharedStore.writeBatch), so no
 * other writer can touch a key until the batch commits. While `beginWriteBehind()` is on, `incr`
 * of a live numeric key therefore reads the key once per batch (one callback) and then counts in
 * the isolate; `settleWriteBehind()` writes each counted key back with one callback at the end of
 * the batch (or after a batch that was cut off: the host then merges the difference). A counter
 * bumped by every request (`ctx.shared('stats').incr('requests', 1, 0)`) costs two callbacks per
 * batch instead of one per request. Creating a key (absent or expired), unusual arguments and every
 * other operation go to the host as before, after the counted keys are written back.
 */
import type { SharedDict, SharedValue } from '../../../runtime-api/index.d.ts';

/** What `ctx.shared(name)` returns (runtime-api's `SharedDict`). */
export type SharedStore = SharedDict;

type HostFn = (op: number, dict: string, key?: unknown, a?: unknown, b?: unknown, c?: unknown) => unknown;

const g = globalThis as unknown as { __sgShared?: HostFn };
const host: HostFn | undefined = g.__sgShared;
delete g.__sgShared;

const OP_GET = 0;
const OP_SET = 1;
const OP_ADD = 2;
const OP_INCR = 3;
const OP_DELETE = 4;
const OP_SIZE = 5;
const OP_SETTLE = 6;
/** As the host's limit (shared-store.ts): longer keys go to the host, which refuses them. */
const MAX_KEY = 1024;
/** As the host's limit on string values (shared-store.ts), checked here so a huge string is never copied out. */
const MAX_STRING = 64 * 1024;

/** Refuses, inside the isolate, a string value the host would refuse after copying it. */
function checkValueSize(value: unknown): void {
  if (typeof value === 'string' && value.length > MAX_STRING) throw new RangeError(`shared dict string values are at most ${MAX_STRING} characters`);
}

/** A key counted in the isolate during a batch: its value when read, and its value now. */
interface Counted {
  dict: string;
  key: string;
  base: number;
  value: number;
}

let writeBehind = false;
const counted = new Map<string, Counted>();

/** Called by the log batch entry before its phases run (the host holds the write transaction). */
export function beginWriteBehind(): void {
  writeBehind = true;
}

/**
 * Writes every counted key back (one callback each) and ends write-behind. Called at the end of a
 * log batch, inside its transaction, and after a batch that was cut off. Throws what the host threw.
 */
export function settleWriteBehind(): void {
  writeBehind = false;
  if (counted.size === 0) return;
  const all = [...counted.values()];
  counted.clear();
  for (const c of all) if (c.value !== c.base) host!(OP_SETTLE, c.dict, c.key, c.base, c.value);
}

/** Writes back pending counts before an operation that must see the store as it is. */
function settleBefore(): void {
  if (counted.size === 0) return;
  const on = writeBehind;
  settleWriteBehind();
  writeBehind = on;
}

/** Arguments the host would accept as they are (else the host call reports the problem). */
function plainIncr(key: unknown, by: unknown, init: unknown, ttl: unknown): boolean {
  return (
    typeof key === 'string' &&
    key.length > 0 &&
    key.length <= MAX_KEY &&
    typeof by === 'number' &&
    Number.isFinite(by) &&
    (init === undefined || init === null || (typeof init === 'number' && Number.isFinite(init))) &&
    (ttl === undefined || ttl === null || ttl === 0 || (typeof ttl === 'number' && ttl > 0 && Number.isFinite(ttl)))
  );
}

let declared = new Set<string>();

/** Called by install with the dict names declared in config. */
export function declareDicts(names: readonly string[]): void {
  declared = new Set(names);
}

class HostDict implements SharedStore {
  readonly #name: string;
  constructor(name: string) {
    this.#name = name;
  }
  get(key: string): SharedValue | undefined {
    settleBefore();
    return host!(OP_GET, this.#name, key) as SharedValue | undefined;
  }
  set(key: string, value: SharedValue | undefined, ttlSeconds?: number): boolean {
    checkValueSize(value);
    settleBefore();
    return host!(OP_SET, this.#name, key, value, ttlSeconds) as boolean;
  }
  add(key: string, value: SharedValue, ttlSeconds?: number): boolean {
    checkValueSize(value);
    settleBefore();
    return host!(OP_ADD, this.#name, key, value, ttlSeconds) as boolean;
  }
  incr(key: string, by: number, init?: number, ttlSeconds?: number): number | undefined {
    if (!writeBehind || !plainIncr(key, by, init, ttlSeconds)) {
      settleBefore();
      return host!(OP_INCR, this.#name, key, by, init, ttlSeconds) as number | undefined;
    }
    const id = `${this.#name}\u0000${key}`;
    let c = counted.get(id);
    if (!c) {
      const now = host!(OP_GET, this.#name, key);
      // Absent, expired or not a number: the host creates it or reports the error, as without write-behind.
      if (typeof now !== 'number') return host!(OP_INCR, this.#name, key, by, init, ttlSeconds) as number | undefined;
      c = { dict: this.#name, key, base: now, value: now };
      counted.set(id, c);
    }
    if (!Number.isFinite(c.value + by)) throw new RangeError(`incr: ${JSON.stringify(key)} would overflow to ${c.value + by}`);
    c.value += by;
    return c.value;
  }
  delete(key: string): boolean {
    settleBefore();
    return host!(OP_DELETE, this.#name, key) as boolean;
  }
  size(): number {
    settleBefore();
    return host!(OP_SIZE, this.#name) as number;
  }
}

const dicts = new Map<string, SharedStore>();

/** The tenant's dictionary called `name`. */
export function sharedDict(name: unknown): SharedStore {
  if (typeof name !== 'string' || name.length === 0) throw new TypeError('ctx.shared(name): name must be a non-empty string');
  let d = dicts.get(name);
  if (!d) {
    if (!host || !declared.has(name)) {
      const known = [...declared].join(', ') || 'none';
      throw new RangeError(`ctx.shared(${JSON.stringify(name)}): no such dict (declared: ${known}); declare it under shared_dicts in the config`);
    }
    d = new HostDict(name);
    dicts.set(name, d);
  }
  return d;
}
