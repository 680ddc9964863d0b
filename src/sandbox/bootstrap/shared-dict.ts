/**
 * Runs inside the isolate: `ctx.shared(name)`, an ngx.shared-style dictionary scoped to the tenant.
 * Values are strings, numbers or booleans; keys expire after an optional TTL in seconds.
 *
 * Default store: `MemorySharedStore`, kept inside the tenant's isolate, so a call costs no host
 * crossing. It is per process (per worker) for now and starts empty when the isolate is recreated
 * (after memory exhaustion or a reload); a cross-worker store can implement `SharedStore` later.
 */
export type SharedValue = string | number | boolean;

/** What `ctx.shared(name)` returns. */
export interface SharedStore {
  get(key: string): SharedValue | undefined;
  set(key: string, value: SharedValue | undefined, ttlSeconds?: number): void;
  add(key: string, value: SharedValue, ttlSeconds?: number): boolean;
  incr(key: string, by: number, init?: number, ttlSeconds?: number): number | undefined;
  delete(key: string): void;
  size(): number;
}

interface Entry {
  v: SharedValue;
  /** Expiry in ms since the epoch; 0 = never. */
  exp: number;
}

function checkKey(key: unknown): string {
  if (typeof key !== 'string' || key.length === 0 || key.length > 65_535) throw new TypeError('shared dict key must be a non-empty string');
  return key;
}

function checkValue(value: unknown): SharedValue {
  if (typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value))) return value;
  throw new TypeError(`shared dict values are strings, finite numbers or booleans, got ${typeof value}`);
}

function expiry(ttl: unknown): number {
  if (ttl === undefined || ttl === 0) return 0;
  if (typeof ttl !== 'number' || !(ttl > 0)) throw new RangeError('ttlSeconds must be a positive number (or 0 / omitted for no expiry)');
  return Date.now() + ttl * 1000;
}

class MemorySharedStore implements SharedStore {
  #map = new Map<string, Entry>();

  #live(key: string): Entry | undefined {
    const e = this.#map.get(key);
    if (e && e.exp !== 0 && e.exp <= Date.now()) {
      this.#map.delete(key);
      return undefined;
    }
    return e;
  }

  get(key: string): SharedValue | undefined {
    return this.#live(checkKey(key))?.v;
  }

  set(key: string, value: SharedValue | undefined, ttlSeconds?: number): void {
    const k = checkKey(key);
    if (value === undefined) this.#map.delete(k);
    else this.#map.set(k, { v: checkValue(value), exp: expiry(ttlSeconds) });
  }

  add(key: string, value: SharedValue, ttlSeconds?: number): boolean {
    const k = checkKey(key);
    if (this.#live(k)) return false;
    this.#map.set(k, { v: checkValue(value), exp: expiry(ttlSeconds) });
    return true;
  }

  incr(key: string, by: number, init?: number, ttlSeconds?: number): number | undefined {
    const k = checkKey(key);
    if (typeof by !== 'number' || !Number.isFinite(by)) throw new TypeError('incr: by must be a finite number');
    const e = this.#live(k);
    if (!e) {
      if (init === undefined) return undefined;
      if (typeof init !== 'number' || !Number.isFinite(init)) throw new TypeError('incr: init must be a finite number');
      const v = init + by;
      this.#map.set(k, { v, exp: expiry(ttlSeconds) });
      return v;
    }
    if (typeof e.v !== 'number') throw new TypeError(`incr: the value of ${JSON.stringify(k)} is not a number`);
    e.v += by;
    return e.v;
  }

  delete(key: string): void {
    this.#map.delete(checkKey(key));
  }

  size(): number {
    const now = Date.now();
    for (const [k, e] of this.#map) if (e.exp !== 0 && e.exp <= now) this.#map.delete(k);
    return this.#map.size;
  }
}

const dicts = new Map<string, SharedStore>();

/** The tenant's dictionary called `name`, created on first use. */
export function sharedDict(name: unknown): SharedStore {
  if (typeof name !== 'string' || name.length === 0) throw new TypeError('ctx.shared(name): name must be a non-empty string');
  let d = dicts.get(name);
  if (!d) {
    d = new MemorySharedStore();
    dicts.set(name, d);
  }
  return d;
}
