/**
 * Writes a response the proxy makes itself (errors, 404, a script's `ctx.exit()`), with an exact
 * Content-Length, and a Content-Type when the body is not empty and none was given (text/plain
 * for a string, application/octet-stream for bytes, as nginx's default_type would be). Returns
 * the body bytes written (0 for HEAD).
 */
import type { ServerResponse } from 'node:http';

export function sendLocal(res: ServerResponse, status: number, headers: string[], body: string | Uint8Array, headOnly: boolean): number {
  const buf = typeof body === 'string' ? Buffer.from(body) : body;
  const out: string[] = [];
  let typed = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    if (name === 'content-length' || name === 'transfer-encoding' || name === 'connection') continue;
    if (name === 'content-type') typed = true;
    out.push(name, headers[i + 1]!);
  }
  const bodyless = status === 204 || status === 304 || status < 200;
  if (!bodyless) out.push('content-length', String(buf.length));
  if (!bodyless && !typed && buf.length > 0) out.push('content-type', typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/octet-stream');
  res.writeHead(status, out);
  if (headOnly || bodyless) {
    res.end();
    return 0;
  }
  res.end(buf);
  return buf.length;
}
