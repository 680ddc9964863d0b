/**
 * Parses and normalises a request target (RFC 9112 §3.2) before routing. Runs once per request.
 * The normalised path is what scripts see and what goes upstream: unreserved characters are
 * percent-decoded (RFC 3986 §6.2.2.2), other escapes are upper-cased, repeated slashes are merged
 * (nginx's merge_slashes), dot-segments are removed (§5.2.4), and a path that climbs above the
 * root is refused. `routingPath` gives the stricter reading an upstream might apply (every escape
 * decoded, `\` read as `/`, `;params` dropped), which is what routes match on, so that a path an
 * upstream reads as `/admin/x` is under the `/admin/` route's rules whatever its spelling.
 */

export interface RequestTarget {
  /** Normalised path, always starting with `/` (or `*` for `OPTIONS *`). */
  path: string;
  /** Query without `?`; '' when none. Passed upstream unchanged. */
  query: string;
  /** Host from an absolute-form target (`GET http://host/x`), which overrides the Host header; never with userinfo. */
  authority?: string;
}

const HEX = '0123456789ABCDEF';

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

function isUnreserved(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 95 || c === 126;
}

/** Percent-decodes unreserved characters, upper-cases other escapes; undefined on a bad escape, NUL or control byte. */
function normaliseEscapes(path: string): string | undefined {
  if (!path.includes('%')) {
    for (let i = 0; i < path.length; i++) if (path.charCodeAt(i) < 0x21 || path.charCodeAt(i) === 0x7f) return undefined;
    return path;
  }
  let out = '';
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c < 0x21 || c === 0x7f) return undefined;
    if (c !== 37) {
      out += path[i];
      continue;
    }
    const hi = hexVal(path.charCodeAt(i + 1));
    const lo = hexVal(path.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) return undefined;
    const byte = hi * 16 + lo;
    if (byte === 0) return undefined;
    out += isUnreserved(byte) ? String.fromCharCode(byte) : `%${HEX[hi]}${HEX[lo]}`;
    i += 2;
  }
  return out;
}

/** RFC 3986 §5.2.4 on an absolute path; undefined when `..` would climb above the root. */
export function removeDotSegments(path: string): string | undefined {
  if (!path.includes('.')) return path;
  const segments = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    const last = i === segments.length - 1;
    if (s === '.') {
      if (last) out.push('');
    } else if (s === '..') {
      if (out.length === 0) return undefined;
      out.pop();
      if (last) out.push('');
    } else out.push(s);
  }
  return '/' + out.join('/');
}

/** Parses `req.url`; undefined when the target is malformed (the caller answers 400). */
export function parseRequestTarget(url: string, method: string): RequestTarget | undefined {
  let rest = url;
  let authority: string | undefined;
  if (rest.charCodeAt(0) !== 47 /* / */) {
    if (rest === '*' && method === 'OPTIONS') return { path: '*', query: '' };
    const m = /^https?:\/\/([^/?#]+)(.*)$/i.exec(rest);
    if (!m) return undefined;
    // Userinfo is refused, not stripped (RFC 9110 §4.2.4: it is there to obscure the authority).
    if (m[1]!.includes('@')) return undefined;
    authority = m[1]!;
    rest = m[2] || '/';
    if (rest.charCodeAt(0) !== 47) rest = '/' + rest;
  }
  const hash = rest.indexOf('#');
  if (hash >= 0) rest = rest.slice(0, hash);
  const q = rest.indexOf('?');
  const rawPath = q >= 0 ? rest.slice(0, q) : rest;
  const query = q >= 0 ? rest.slice(q + 1) : '';
  const escaped = normaliseEscapes(rawPath);
  if (escaped === undefined) return undefined;
  const path = removeDotSegments(mergeSlashes(escaped));
  if (path === undefined) return undefined;
  return authority === undefined ? { path, query } : { path, query, authority };
}

/** Collapses each run of `/` into one (nginx's merge_slashes, on by default there too). */
function mergeSlashes(path: string): string {
  return path.includes('//') ? path.replace(/\/{2,}/g, '/') : path;
}

/**
 * The path as the most lenient upstream would read a normalised one: every escape decoded once
 * (including `%2F`, `%5C`, `%2E`), `\` read as `/`, `;params` dropped from segments (Tomcat/Jetty
 * read `/..;/` as `/../`), slashes merged and dot-segments removed. Routes match on this reading.
 * Returns the path itself when it has nothing to decode (the common case), and undefined when the
 * reading climbs above the root or its escapes are not UTF-8 (the caller answers 400).
 */
export function routingPath(path: string): string | undefined {
  if (!path.includes('%') && !path.includes('\\') && !path.includes(';')) return path;
  let decoded: string;
  try {
    decoded = decodeURIComponent(path.replace(/%(?![0-9A-Fa-f]{2})/g, '%25'));
  } catch {
    return undefined; // escapes that are not UTF-8 (%C0%AE, an overlong '.'): refused, not guessed at
  }
  return removeDotSegments(mergeSlashes(decoded.replace(/\\/g, '/').replace(/;[^/]*/g, '')));
}
