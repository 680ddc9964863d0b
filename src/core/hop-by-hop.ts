/**
 * Hop-by-hop header handling (RFC 9110 §7.6.1). Runs on every proxied request and response:
 * headers that describe one connection are removed before a message is forwarded, together with
 * every header the Connection header names; end-to-end headers are kept exactly, repeats included.
 */

/** Always removed, both ways. `expect` is answered by the proxy itself (100-continue). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings']);

/** True for a header that describes one connection (never forwarded or set by a script). */
export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name);
}

function connectionTokens(value: string | string[] | undefined, into?: Set<string>): Set<string> | undefined {
  if (value === undefined) return into;
  const joined = Array.isArray(value) ? value.join(',') : value;
  const set = into ?? new Set<string>();
  for (const t of joined.split(',')) {
    const token = t.trim().toLowerCase();
    if (token) set.add(token);
  }
  return set.size ? set : undefined;
}

/**
 * Copies node's `rawHeaders` ([name, value, …]) into a flat list with lower-case names, without
 * hop-by-hop headers, the ones `Connection` names, and any name in `drop`.
 */
export function forwardRawHeaders(raw: string[], drop?: ReadonlySet<string>): string[] {
  let named: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 10 && raw[i]!.toLowerCase() === 'connection') {
      // Several Connection headers: the tokens of all of them count (RFC 9110 §5.3).
      named = connectionTokens(raw[i + 1], named);
    }
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    // HTTP/2 pseudo-headers (`:method`, `:authority`, …) describe the request, they are not fields.
    if (HOP_BY_HOP.has(name) || named?.has(name) || drop?.has(name) || name.charCodeAt(0) === 58) continue;
    out.push(name, raw[i + 1]!);
  }
  return out;
}

/**
 * Turns an undici response header object (lower-case keys; arrays for repeats) into a flat list
 * for `res.writeHead`, without hop-by-hop headers and the ones `Connection` names.
 */
export function forwardResponseHeaders(headers: Record<string, string | string[] | undefined>): string[] {
  const named = connectionTokens(headers.connection);
  const out: string[] = [];
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || named?.has(name)) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (typeof value === 'string') out.push(name, value);
    else for (const v of value) out.push(name, v);
  }
  return out;
}

/**
 * A flat header list ([name, value, …]) with lower-case names, without any name in `drop`
 * (lower-case). For heads the proxy rewrites itself: a length it sets anew, a duplicate id.
 */
export function withoutHeaders(headers: readonly string[], drop: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    if (!drop.has(name)) out.push(name, headers[i + 1]!);
  }
  return out;
}

/**
 * A header list a script returned (rewrite/access for the request, header_filter for the
 * response), made safe to forward: the proxy frames every message itself, so hop-by-hop headers
 * and Content-Length set by the script are dropped, and `length` (the Content-Length the proxy
 * knows for the body it will send; undefined = none) takes the latter's place.
 */
export function scriptFramedHeaders(headers: readonly string[], length: string | undefined): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (HOP_BY_HOP.has(name) || name === 'content-length') continue;
    out.push(name, headers[i + 1]!);
  }
  if (length !== undefined) out.push('content-length', length);
  return out;
}

/** The value of `name` (lower-case) in a flat header list; undefined when absent. */
export function headerIn(headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return headers[i + 1];
  return undefined;
}
