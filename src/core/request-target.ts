/**
 * Parses and normalises a request target (RFC 9112 §3.2) before routing. Runs once per request.
 * The normalised path is what routes match on and what goes upstream, so a prefix can never be
 * escaped: unreserved characters are percent-decoded (RFC 3986 §6.2.2.2), other escapes are
 * upper-cased, dot-segments are removed (§5.2.4), and a path that climbs above the root is refused.
 * `escapesPrefix` then checks the stricter reading an upstream might apply (every escape decoded,
 * `\` read as `/`).
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
  const path = removeDotSegments(escaped);
  if (path === undefined) return undefined;
  return authority === undefined ? { path, query } : { path, query, authority };
}

/**
 * True when an upstream that decodes every escape (including `%2F`, `%5C`, `%2E`), reads `\` as
 * `/` and drops `;params` from segments (Tomcat/Jetty: `/..;/` is `/../`) would see a path outside
 * `prefix`, or above the root. The proxy then refuses with 400.
 */
export function escapesPrefix(path: string, prefix: string): boolean {
  if (!path.includes('%') && !path.includes('\\') && !path.includes(';')) return false;
  let decoded: string;
  try {
    decoded = decodeURIComponent(path.replace(/%(?![0-9A-Fa-f]{2})/g, '%25'));
  } catch {
    return true;
  }
  const strict = removeDotSegments(decoded.replace(/\\/g, '/').replace(/;[^/]*/g, ''));
  if (strict === undefined) return true;
  if (prefix === '/') return false;
  // A prefix like `/api` must still cover the strict reading (`/api/../x` is outside, `/api/x` is not).
  return !strict.startsWith(prefix) && !(strict + '/').startsWith(prefix);
}
