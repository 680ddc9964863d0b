/**
 * Writes a response the proxy makes itself (errors, 404, a script's `ctx.exit()`), with an exact
 * Content-Length. Returns the body bytes written (0 for HEAD).
 */
import type { ServerResponse } from 'node:http';

export function sendLocal(res: ServerResponse, status: number, headers: string[], body: string | Uint8Array, headOnly: boolean): number {
  const buf = typeof body === 'string' ? Buffer.from(body) : body;
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    if (name === 'content-length' || name === 'transfer-encoding' || name === 'connection') continue;
    out.push(name, headers[i + 1]!);
  }
  const bodyless = status === 204 || status === 304 || status < 200;
  if (!bodyless) out.push('content-length', String(buf.length));
  res.writeHead(status, out);
  if (headOnly || bodyless) {
    res.end();
    return 0;
  }
  res.end(buf);
  return buf.length;
}
