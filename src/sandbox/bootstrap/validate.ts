/**
 * Runs inside the isolate, when a script changes something that goes on the wire (method, path,
 * query, header, status, redirect URL). Default: nothing is coerced silently except numbers to
 * strings, and characters outside ASCII in a path, query or redirect URL, which are
 * percent-encoded as UTF-8 (as a browser does; a request-target is ASCII, RFC 9112 §3.2). Throws a
 * TypeError/RangeError naming the bad value, so the error points at the script's own line; returns
 * the accepted value.
 */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const NO_CTL = /^[^\x00-\x1f\x7f]*$/;
/** Header values may contain horizontal tabs, no other control character, and only bytes (U+0000–U+00FF). */
const HEADER_VALUE = /^[^\x00-\x08\x0a-\x1f\x7f\u0100-\uffff]*$/;
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;
const HAS_NON_ASCII = /[^\x00-\x7f]/;
const NON_ASCII_RUN = /[^\x00-\x7f]+/g;
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
  if (!HEADER_VALUE.test(v)) {
    if (CONTROL.test(v)) throw new TypeError(`header ${name}: value contains CR, LF or another control character`);
    throw new TypeError(`header ${name}: value contains a character above U+00FF (header values are bytes: percent-encode it, e.g. with encodeURIComponent)`);
  }
  return v;
}

export function method(v: unknown): string {
  if (typeof v !== 'string' || v.length > 32 || !TOKEN.test(v)) throw new TypeError(`invalid method ${show(v)}`);
  const m = v.toUpperCase();
  // CONNECT opens a tunnel, not a request a reverse proxy can forward (the listener refuses it too).
  if (m === 'CONNECT') throw new TypeError('method CONNECT cannot be set: it opens a tunnel, which scriptgate does not forward');
  return m;
}

/** `v` with every run of non-ASCII characters percent-encoded as UTF-8; a lone surrogate throws. */
function asciiOnly(v: string, what: string): string {
  if (!HAS_NON_ASCII.test(v)) return v;
  try {
    return v.replace(NON_ASCII_RUN, encodeURIComponent);
  } catch {
    throw new TypeError(`invalid ${what} ${show(v)}: it contains a lone UTF-16 surrogate`);
  }
}

export function path(v: unknown): string {
  if (typeof v !== 'string' || !PATH.test(capped(v, 'path'))) throw new TypeError(`invalid path ${show(v)}: must start with / and contain no spaces, control characters, ? or #`);
  return capped(asciiOnly(v, 'path'), 'path');
}

export function query(v: unknown): string {
  let q = typeof v === 'string' ? v : '';
  if (q.startsWith('?')) q = q.slice(1);
  if (typeof v !== 'string' || !QUERY.test(capped(q, 'query'))) throw new TypeError(`invalid query ${show(v)}: no spaces, control characters or #`);
  return capped(asciiOnly(q, 'query'), 'query');
}

/** A final status (200–599): a 1xx is never a final response (RFC 9110 §15.2). */
export function exitStatus(v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 200 || v > 599) throw new RangeError(`invalid status ${show(v)}: expected an integer from 200 to 599 (a 1xx is not a final response)`);
  return v;
}

export function redirectStatus(v: unknown): number {
  if (typeof v !== 'number' || !REDIRECT_STATUS.includes(v)) throw new RangeError(`invalid redirect status ${show(v)}: expected 301, 302, 303, 307 or 308`);
  return v;
}

export function redirectUrl(v: unknown): string {
  if (typeof v !== 'string' || v.length === 0 || !NO_CTL.test(capped(v, 'redirect URL'))) throw new TypeError(`invalid redirect URL ${show(v)}: a non-empty string without CR, LF or control characters`);
  // A space and the other ASCII characters a URI may not hold are percent-encoded, as browsers do.
  return capped(asciiOnly(v, 'redirect URL').replace(URI_UNSAFE, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`), 'redirect URL');
}
const URI_UNSAFE = /[ "<>\\^`{|}]/g;
