/**
 * node:http2 client helpers for tests: connect (h2c or TLS, closed after the test) and one request
 * on a session, resolving with status, headers, body and trailers.
 */
import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders, type SecureClientSessionOptions } from 'node:http2';
import { onTestFinished } from 'vitest';

export interface H2Response {
  status: number;
  headers: IncomingHttpHeaders;
  trailers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

/** Opens an HTTP/2 session (h2c for `http://`, TLS for `https://`); closed when the test ends. */
export async function h2Connect(authority: string, options: SecureClientSessionOptions = {}): Promise<ClientHttp2Session> {
  const session = http2.connect(authority, options);
  onTestFinished(() => {
    session.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    session.once('connect', () => resolve());
    session.once('error', reject);
  });
  session.on('error', () => undefined);
  return session;
}

/** One request on `session`; `headers` may carry pseudo-headers (`:path`, `:method`, `:authority`). */
export function h2Request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: string | Buffer): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    let status = 0;
    let respHeaders: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      status = Number(h[':status']);
      respHeaders = h;
    });
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const b = Buffer.concat(chunks);
      resolve({ status, headers: respHeaders, trailers, body: b, text: b.toString() });
    });
    stream.on('error', reject);
    if (body !== undefined) stream.end(body);
  });
}
