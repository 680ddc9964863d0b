/**
 * Runs inside the isolate: the Headers-like object scripts see as `ctx.request.headers` and
 * `ctx.response.headers`. Backed by the flat `[name, value, …]` list that crossed the boundary
 * (lower-case names, repeats kept in order). Default: read-only; mutators first call the phase
 * guard given at construction. `get()` joins repeated headers with ", " (Fetch semantics), and
 * repeated Cookie headers with "; ", the one separator a cookie list has (RFC 6265 §5.4);
 * `headerListDirty()` tells the bootstrap to send the whole list back.
 */
import { headerName, headerValue } from './validate.ts';

let rawOf: (h: HeaderList) => string[];
let isDirty: (h: HeaderList) => boolean;

/** The list behind `h` (bootstrap only; scripts cannot reach it). */
export function headerListRaw(h: HeaderList): string[] {
  return rawOf(h);
}

/** True when a script changed `h`. */
export function headerListDirty(h: HeaderList): boolean {
  return isDirty(h);
}

export class HeaderList {
  #list: string[];
  #guard: (what: string) => void;
  #dirty = false;

  static {
    rawOf = (h) => h.#list;
    isDirty = (h) => h.#dirty;
  }

  constructor(list: string[], guard: (what: string) => void) {
    this.#list = list;
    this.#guard = guard;
  }

  get(name: string): string | null {
    const n = String(name).toLowerCase();
    const l = this.#list;
    let out: string | null = null;
    const sep = n === 'cookie' ? '; ' : ', ';
    for (let i = 0; i < l.length; i += 2) if (l[i] === n) out = out === null ? l[i + 1]! : `${out}${sep}${l[i + 1]}`;
    return out;
  }

  getAll(name: string): string[] {
    const n = String(name).toLowerCase();
    const l = this.#list;
    const out: string[] = [];
    for (let i = 0; i < l.length; i += 2) if (l[i] === n) out.push(l[i + 1]!);
    return out;
  }

  has(name: string): boolean {
    const n = String(name).toLowerCase();
    const l = this.#list;
    for (let i = 0; i < l.length; i += 2) if (l[i] === n) return true;
    return false;
  }

  set(name: string, value: string | number): void {
    this.#guard('headers.set()');
    const n = headerName(name);
    const v = headerValue(n, value);
    this.#remove(n);
    this.#list.push(n, v);
    this.#dirty = true;
  }

  append(name: string, value: string | number): void {
    this.#guard('headers.append()');
    const n = headerName(name);
    this.#list.push(n, headerValue(n, value));
    this.#dirty = true;
  }

  delete(name: string): void {
    this.#guard('headers.delete()');
    if (this.#remove(String(name).toLowerCase())) this.#dirty = true;
  }

  #remove(n: string): boolean {
    const l = this.#list;
    let w = 0;
    for (let i = 0; i < l.length; i += 2) {
      if (l[i] === n) continue;
      l[w++] = l[i]!;
      l[w++] = l[i + 1]!;
    }
    const removed = w !== l.length;
    l.length = w;
    return removed;
  }

  *entries(): IterableIterator<[string, string]> {
    const l = this.#list.slice();
    for (let i = 0; i < l.length; i += 2) yield [l[i]!, l[i + 1]!];
  }

  *keys(): IterableIterator<string> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): IterableIterator<string> {
    for (const [, v] of this.entries()) yield v;
  }

  forEach(cb: (value: string, name: string, headers: HeaderList) => void): void {
    for (const [k, v] of this.entries()) cb(v, k, this);
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }
}
