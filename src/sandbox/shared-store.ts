/**
 * Host side of `ctx.shared(name)`: ngx.shared-style dicts kept in an LMDB environment (the `lmdb`
 * package, a memory-mapped B-tree with a cross-process write lock), so every cluster worker of one
 * scriptgate instance sees and atomically updates the same values. Runs synchronously inside a
 * phase crossing, called from the isolate through one fixed `ivm.Callback` per tenant (see
 * `tenantSharedCallback`); the tenant name is bound on the host, so a tenant can only reach its own
 * dicts, and only those declared in config (`shared_dicts: { name: { capacity } }`).
 *
 * Where: `<tmpdir>/scriptgate-shm-<hash of the config file>-<pid of the primary>`: workers of one
 * instance share it, a cold start begins empty (as nginx's shared dicts do), a reload keeps it, and
 * so does a zero-downtime upgrade (the successor continues the instance through INSTANCE_ENV; the
 * folder's `owner.pid` names the live primary).
 * Folders of instances whose primary is gone are removed when any instance opens its store.
 *
 * Across processes: every write transaction, and the opening of the environment, hold the
 * store's *gate*: the write lock of a second LMDB environment in the folder (`gate.mdb`) in which
 * nothing is ever written, used only as a cross-process mutex. Reason: the LMDB fork bundled by
 * `lmdb` (0.9.90) still has OpenLDAP ITS#9496, fixed upstream: a process opening the environment
 * stores, without the write lock, the last transaction id it read at open into the lock file. A
 * commit by another process in between (a new cluster worker or an upgrade's successor starting
 * under load) is then lost, and the following writers reuse the rewound ids: lost updates,
 * diverging values, a counter going backwards (test/integration/shared-dict-open-race.test.ts).
 * Under the gate no commit falls in that window. It costs one uncontended mutex per write (well
 * under a µs); reads take no lock. The environment is opened without `useWritemap`: with it, that
 * LMDB fork aborts the process (an assertion in mdb_freelist_save) when a fresh environment's first
 * freed page is saved, e.g. a `set` then a `delete`.
 *
 * Semantics: reads never write (an expired entry reads as absent); each write (`set`, `add`,
 * `incr`, `delete`) is one LMDB write transaction, atomic across workers (`writeBatch` folds many
 * into one, for deferred log phases). `incr(key, by, init, ttl)`: the TTL applies only when the key
 * is created. Capacity: a write that would add a key to a full dict first removes the dict's
 * expired entries; if it is still full the write is refused (`set`/`add` return false, `incr`
 * returns undefined) — never an eviction of live keys (ngx's `safe_set` behaviour).
 *
 * @example
 *   const store = SharedStore.forConfig('/etc/scriptgate.yaml', { stats: { capacity: 10000 } });
 *   const cb = tenantSharedCallback(store, 'acme');   // goes into the isolate
 *   store.release();                                  // with the generation
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import cluster from 'node:cluster';
import { open, type Database, type RootDatabase } from 'lmdb';
import { INSTANCE_ENV } from '../control/upgrade.ts';

export type SharedValue = string | number | boolean;
/** [value, expiry in ms since the epoch (0 = never)] */
type Entry = [SharedValue, number];

/** Operation codes of the callback (the bootstrap uses the same numbers). */
export const SHARED_OP = { get: 0, set: 1, add: 2, incr: 3, delete: 4, size: 5, settle: 6 } as const;

/** Key size, in UTF-8 bytes: LMDB's own limit is 1978 bytes with its encoding, so every operation refuses the same keys clearly. */
const MAX_KEY = 1024;
const MAX_STRING = 64 * 1024;

interface DictConfig {
  capacity: number;
}

function checkKey(key: unknown): string {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY || Buffer.byteLength(key, 'utf8') > MAX_KEY) throw new TypeError(`shared dict key must be a non-empty string of at most ${MAX_KEY} bytes (UTF-8)`);
  return key;
}

function checkValue(value: unknown): SharedValue {
  if (typeof value === 'string') {
    if (value.length > MAX_STRING) throw new RangeError(`shared dict string values are at most ${MAX_STRING} characters`);
    return value;
  }
  if (typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value))) return value;
  throw new TypeError(`shared dict values are strings, finite numbers or booleans, got ${typeof value}`);
}

function expiry(ttl: unknown, now: number): number {
  if (ttl === undefined || ttl === null || ttl === 0) return 0;
  if (typeof ttl !== 'number' || !(ttl > 0) || !Number.isFinite(ttl)) throw new RangeError('ttlSeconds must be a positive number (or 0 / omitted for no expiry)');
  return now + ttl * 1000;
}

const live = (e: Entry | undefined, now: number): e is Entry => e !== undefined && (e[1] === 0 || e[1] > now);

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const opened = new Map<string, SharedStore>();

export class SharedStore {
  readonly dir: string;
  readonly #root: RootDatabase;
  /** Never written: its write lock is the cross-process gate (see the module comment). */
  readonly #gate: RootDatabase;
  #dicts: Readonly<Record<string, DictConfig>>;
  readonly #dbs = new Map<string, Database<Entry, string>>();
  #refs = 0;
  #batchDepth = 0;
  #gateDepth = 0;

  private constructor(dir: string, dicts: Record<string, DictConfig>) {
    this.dir = dir;
    this.#dicts = dicts;
    this.#gate = open({ path: path.join(dir, GATE_FILE), noSubdir: true, noSync: true, mapSize: 1 << 20, compression: false });
    try {
      this.#root = this.#gated(() => open({ path: dir, noSubdir: false, maxDbs: 4096, noSync: true, noMetaSync: true, mapSize: 1 << 30, compression: false }));
    } catch (err) {
      void this.#gate.close();
      throw err;
    }
  }

  /** Runs `fn` holding the gate (re-entrant). Every commit and the environment's opening go through here. */
  #gated<T>(fn: () => T): T {
    if (this.#gateDepth > 0) return fn();
    this.#gateDepth++;
    try {
      // An empty write transaction: it commits nothing, so the gate's own state never changes.
      return this.#gate.transactionSync(fn);
    } finally {
      this.#gateDepth--;
    }
  }

  /**
   * The store of the instance running `configFile` (shared by its workers), with `dicts` as the
   * declared dicts of the current generation. Each call takes a reference; `release()` drops it.
   */
  static forConfig(configFile: string, dicts: Record<string, DictConfig>, dirOverride?: string): SharedStore {
    const primary = cluster.isWorker ? process.ppid : process.pid;
    // A process started by a zero-downtime upgrade continues its predecessor's instance (and store).
    const instance = Number(process.env[INSTANCE_ENV]) || primary;
    const hash = createHash('sha256').update(path.resolve(configFile)).digest('hex').slice(0, 12);
    const prefix = `scriptgate-shm-${hash}-`;
    const dir = dirOverride ?? path.join(tmpdir(), `${prefix}${instance}`);
    let store = opened.get(dir);
    if (!store) {
      if (!dirOverride) removeStale(primary);
      store = new SharedStore(dir, dicts);
      if (!cluster.isWorker) {
        // Atomically (write, then rename): another instance's removeStale must never read it empty.
        const tmp = path.join(dir, `${OWNER_FILE}.${process.pid}`);
        writeFileSync(tmp, String(process.pid));
        renameSync(tmp, path.join(dir, OWNER_FILE));
      }
      opened.set(dir, store);
    } else {
      store.#dicts = dicts;
    }
    store.#refs++;
    return store;
  }

  /** Declared dict names (sent into the isolate so an unknown name fails with a clear error). */
  get names(): string[] {
    return Object.keys(this.#dicts);
  }

  #db(tenant: string, dict: unknown): [Database<Entry, string>, DictConfig] {
    if (typeof dict !== 'string' || !Object.hasOwn(this.#dicts, dict)) {
      throw new RangeError(`ctx.shared(${JSON.stringify(dict)}): no such dict; declare it under shared_dicts in the config`);
    }
    const name = `${tenant}/${dict}`;
    let db = this.#dbs.get(name);
    if (!db) {
      // Opening a dict that does not exist yet creates it: a commit.
      db = this.#gated(() => this.#root.openDB<Entry, string>({ name, compression: false }));
      this.#dbs.set(name, db);
    }
    return [db, this.#dicts[dict]!];
  }

  /** Runs `fn` in one write transaction (nested writes join it). */
  #write<T>(db: Database<Entry, string>, fn: () => T): T {
    if (this.#batchDepth > 0) return fn();
    return this.#gated(() => db.transactionSync(fn));
  }

  /** Room for one more key: true when below capacity, after dropping expired entries if needed. */
  #room(db: Database<Entry, string>, cap: DictConfig, now: number): boolean {
    if ((db.getStats() as { entryCount: number }).entryCount < cap.capacity) return true;
    for (const { key, value } of db.getRange()) if (!live(value, now)) db.removeSync(key);
    return (db.getStats() as { entryCount: number }).entryCount < cap.capacity;
  }

  /** One operation for `tenant` (what the isolate's callback calls). */
  call(tenant: string, op: number, dict: unknown, key: unknown, a: unknown, b: unknown, c: unknown): SharedValue | undefined {
    const [db, cap] = this.#db(tenant, dict);
    const now = Date.now();
    switch (op) {
      case SHARED_OP.get: {
        const e = db.get(checkKey(key));
        return live(e, now) ? e[0] : undefined;
      }
      case SHARED_OP.set: {
        const k = checkKey(key);
        if (a === undefined || a === null) return this.#write(db, () => (db.removeSync(k), true));
        const entry: Entry = [checkValue(a), expiry(b, now)];
        return this.#write(db, () => {
          if (db.get(k) === undefined && !this.#room(db, cap, now)) return false;
          db.putSync(k, entry);
          return true;
        });
      }
      case SHARED_OP.add: {
        const k = checkKey(key);
        const entry: Entry = [checkValue(a), expiry(b, now)];
        return this.#write(db, () => {
          const e = db.get(k);
          if (live(e, now)) return false;
          if (e === undefined && !this.#room(db, cap, now)) return false;
          db.putSync(k, entry);
          return true;
        });
      }
      case SHARED_OP.incr: {
        const k = checkKey(key);
        if (typeof a !== 'number' || !Number.isFinite(a)) throw new TypeError('incr: by must be a finite number');
        if (b !== undefined && b !== null && (typeof b !== 'number' || !Number.isFinite(b))) throw new TypeError('incr: init must be a finite number');
        const exp = expiry(c, now);
        return this.#write(db, () => {
          const e = db.get(k);
          if (live(e, now)) {
            if (typeof e[0] !== 'number') throw new TypeError(`incr: the value of ${JSON.stringify(k)} is not a number`);
            const v = e[0] + a;
            if (!Number.isFinite(v)) throw new RangeError(`incr: ${JSON.stringify(k)} would overflow to ${v}`);
            db.putSync(k, [v, e[1]]);
            return v;
          }
          if (b === undefined || b === null) return undefined;
          if (e === undefined && !this.#room(db, cap, now)) return undefined;
          const v = b + a;
          if (!Number.isFinite(v)) throw new RangeError(`incr: ${JSON.stringify(k)} would overflow to ${v}`);
          db.putSync(k, [v, exp]);
          return v;
        });
      }
      case SHARED_OP.settle: {
        // The isolate counted a key during a log batch (bootstrap/shared-dict.ts write-behind): `a`
        // is the value it read, `b` the value it reached. Inside the batch nobody else wrote, so
        // `b` is stored as it is; after a batch that was cut off the difference is added to
        // whatever the key holds now. A key that expired or was deleted meanwhile stays so.
        const k = checkKey(key);
        if (typeof a !== 'number' || typeof b !== 'number') throw new TypeError('settle: counts must be numbers');
        return this.#write(db, () => {
          const e = db.get(k);
          if (!live(e, now) || typeof e[0] !== 'number') return undefined;
          const v = e[0] === a ? b : e[0] + (b - a);
          db.putSync(k, [v, e[1]]);
          return v;
        });
      }
      case SHARED_OP.delete: {
        const k = checkKey(key);
        return this.#write(db, () => db.removeSync(k));
      }
      case SHARED_OP.size: {
        let n = 0;
        for (const { value } of db.getRange()) if (live(value, now)) n++;
        return n;
      }
      default:
        throw new RangeError(`shared dict: unknown operation ${op}`);
    }
  }

  /**
   * Runs `fn` (a crossing that may write many times, e.g. a batch of log phases) inside ONE write
   * transaction, so its writes cost one commit. The cross-worker write lock is held while `fn`
   * runs (at most the tenant's cpu_ms). Writes made before `fn` throws are kept.
   */
  writeBatch<T>(fn: () => T): T {
    if (this.#batchDepth > 0) return fn();
    let failed: { err: unknown } | undefined;
    const out = this.#gated(() =>
      this.#root.transactionSync(() => {
        this.#batchDepth++;
        try {
          return fn();
        } catch (err) {
          failed = { err };
          return undefined as T;
        } finally {
          this.#batchDepth--;
        }
      }),
    );
    if (failed) throw failed.err;
    return out;
  }

  /** Drops one reference; the last one closes the environment (its folder stays for the other workers). */
  release(): void {
    if (--this.#refs > 0) return;
    opened.delete(this.dir);
    this.#dbs.clear();
    void this.#root.close();
    void this.#gate.close();
  }
}

const OWNER_FILE = 'owner.pid';
const GATE_FILE = 'gate.mdb';

/** Removes store folders (of any config) whose instance's primary process is gone. */
function removeStale(self: number): void {
  let names: string[];
  try {
    names = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^scriptgate-shm-[0-9a-f]{12}-(\d+)$/.exec(n);
    if (!m) continue;
    // The owner file names the primary using the store now (it changes on a zero-downtime upgrade).
    let pid = Number(m[1]);
    try {
      pid = Number(readFileSync(path.join(tmpdir(), n, OWNER_FILE), 'utf8')) || pid;
    } catch {
      /* no owner file: the folder's own pid */
    }
    if (pid === self || pidAlive(pid)) continue;
    rmSync(path.join(tmpdir(), n), { recursive: true, force: true });
  }
}
