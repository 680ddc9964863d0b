/**
 * Runs inside the isolate, when a script changes something that goes on the wire (method, path,
 * query, header, status, redirect URL). Default: nothing is coerced silently except numbers and
 * strings to string. Throws a TypeError/RangeError naming the bad value, so the error points at the
 * script's own line; returns the accepted value.
 */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const NO_CTL = /^[^\x00-\x1f\x7f]*$/;
/** Header values may contain horizontal tabs, no other control character. */
const HEADER_VALUE = /^[^\x00-\x08\x0a-\x1f\x7f]*$/;
const PATH = /^\/[^\x00-\x20\x7f#?]*$/;
const QUERY = /^[^\x00-\x20\x7f#]*$/;
const REDIRECT_STATUS = [301, 302, 303, 307, 308];
/** Longest header value, path, query or URL accepted (checked before any regex touches the string). */
export const MAX_FIELD = 64 * 1024;

function capped(v: string, what: string): string {
  if (v.length > MAX_FIELD) throw new RangeError(`${what} is ${v.length} characters long (limit ${MAX_FIELD})`);
  return v;
}

function show(v: unknown): string {
  const s = typeof v === 'string' ? JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}…` : v) : String(v);
  return s;
}

export function headerName(name: unknown): string {
  const n = typeof name === 'string' && name.length <= 256 ? name.toLowerCase() : '';
  if (!TOKEN.test(n)) throw new TypeError(`invalid header name ${show(name)}`);
  return n;
}

export function headerValue(name: string, value: unknown): string {
  if (typeof value !== 'string' && typeof value !== 'number') throw new TypeError(`header ${name}: value must be a string, got ${typeof value}`);
  const v = capped(String(value), `header ${name}`);
  if (!HEADER_VALUE.test(v)) throw new TypeError(`header ${name}: value contains CR, LF or another control character`);
  return v;
}

export function method(v: unknown): string {
  if (typeof v !== 'string' || v.length > 32 || !TOKEN.test(v)) throw new TypeError(`invalid method ${show(v)}`);
  return v.toUpperCase();
}

export function path(v: unknown): string {
  if (typeof v !== 'string' || !PATH.test(capped(v, 'path'))) throw new TypeError(`invalid path ${show(v)}: must start with / and contain no spaces, control characters, ? or #`);
  return v;
}

export function query(v: unknown): string {
  let q = typeof v === 'string' ? v : '';
  if (q.startsWith('?')) q = q.slice(1);
  if (typeof v !== 'string' || !QUERY.test(capped(q, 'query'))) throw new TypeError(`invalid query ${show(v)}: no spaces, control characters or #`);
  return q;
}

export function exitStatus(v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 100 || v > 599) throw new RangeError(`invalid status ${show(v)}: expected an integer from 100 to 599`);
  return v;
}

export function redirectStatus(v: unknown): number {
  if (typeof v !== 'number' || !REDIRECT_STATUS.includes(v)) throw new RangeError(`invalid redirect status ${show(v)}: expected 301, 302, 303, 307 or 308`);
  return v;
}

export function redirectUrl(v: unknown): string {
  if (typeof v !== 'string' || v.length === 0 || !NO_CTL.test(capped(v, 'redirect URL'))) throw new TypeError(`invalid redirect URL ${show(v)}: a non-empty string without CR, LF or control characters`);
  return v;
}
