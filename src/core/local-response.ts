/**
 * Writes a response the proxy makes itself (errors, 404, a script's `ctx.exit()`), with an exact
 * Content-Length, and a Content-Type when the body is not empty and none was given (text/plain
 * for a string, application/octet-stream for bytes, as nginx's default_type would be). Returns
 * the body bytes written (0 for HEAD); throws PRX_ERR_SCRIPT_RESULT, with nothing sent, for a head
 * the protocol cannot carry.
 */
import type { ServerResponse } from 'node:http';
import { ProxyError } from '../errors.ts';
import { isHopByHop } from './hop-by-hop.ts';

export function sendLocal(res: ServerResponse, status: number, headers: string[], body: string | Uint8Array, headOnly: boolean): number {
  const buf = typeof body === 'string' ? Buffer.from(body) : body;
  const out: string[] = [];
  let typed = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    // The proxy frames the message: a length, Transfer-Encoding or hop-by-hop field given here is
    // dropped (HTTP/2 refuses them outright).
    if (name === 'content-length' || isHopByHop(name)) continue;
    if (name === 'content-type') typed = true;
    out.push(name, headers[i + 1]!);
  }
  const bodyless = status === 204 || status === 304 || status < 200;
  if (!bodyless) out.push('content-length', String(buf.length));
  if (!bodyless && !typed && buf.length > 0) out.push('content-type', typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/octet-stream');
  try {
    res.writeHead(status, out);
  } catch (err) {
    // A head the protocol cannot carry (HTTP/2: two values of a single-value field). The fields
    // stay on the response object, so clear them: the caller answers 500 on the same response.
    clearHeaders(res);
    throw new ProxyError('PRX_ERR_SCRIPT_RESULT', `the response head cannot be sent: ${(err as Error).message}`, { cause: err });
  }
  if (headOnly || bodyless) {
    res.end();
    return 0;
  }
  res.end(buf);
  return buf.length;
}

/**
 * Removes every field a refused `writeHead` left on `res` (they would go out with the next head),
 * so a 500/502 can be sent on the same response.
 */
export function clearHeaders(res: ServerResponse): void {
  for (const name of res.getHeaderNames()) res.removeHeader(name);
}
