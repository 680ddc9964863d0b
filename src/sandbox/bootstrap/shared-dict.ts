/**
 * Runs inside the isolate: `ctx.shared(name)`, an ngx.shared-style dictionary scoped to the tenant
 * and shared by all cluster workers. Every call is one synchronous host callback into the tenant's
 * SharedStore (src/sandbox/shared-store.ts, LMDB); the callback is the only host function in the
 * isolate, takes primitives only and has the tenant bound on the host side. The bootstrap takes it
 * from the global `__sgShared` before any tenant code runs and deletes that global.
 *
 * Default: only dicts declared in config (`shared_dicts`) exist; others throw a clear error. A dict
 * that is full refuses new keys (`set`/`add` return false, `incr` returns undefined).
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
    return host!(OP_GET, this.#name, key) as SharedValue | undefined;
  }
  set(key: string, value: SharedValue | undefined, ttlSeconds?: number): boolean {
    return host!(OP_SET, this.#name, key, value, ttlSeconds) as boolean;
  }
  add(key: string, value: SharedValue, ttlSeconds?: number): boolean {
    return host!(OP_ADD, this.#name, key, value, ttlSeconds) as boolean;
  }
  incr(key: string, by: number, init?: number, ttlSeconds?: number): number | undefined {
    return host!(OP_INCR, this.#name, key, by, init, ttlSeconds) as number | undefined;
  }
  delete(key: string): boolean {
    return host!(OP_DELETE, this.#name, key) as boolean;
  }
  size(): number {
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
