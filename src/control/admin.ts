/**
 * The admin listener (config `admin:`): `GET /status`, `GET /status/errors` (script errors grouped
 * by script:line, error-report.ts), `GET /metrics` (Prometheus text), `POST /reload`. Bound to the configured address (loopback in the examples); when `admin.token` is
 * set every request must carry `Authorization: Bearer <token>`, compared in constant time, and a
 * non-loopback address without a token is refused at config validation.
 */
import http from 'node:http';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { parseHostPort } from '../config/units.ts';
import type { ReloadResult } from './reload.ts';

export interface AdminOptions {
  address: string;
  /** The token requests must carry, read per request so that a reload that changes it applies at once; undefined = none. */
  token: () => string | undefined;
  logger: Logger;
  status: () => unknown;
  /** Script error report (observability/error-report.ts); in a cluster gathered from the workers. */
  errors: () => unknown;
  reload: () => Promise<ReloadResult>;
  metrics: () => Promise<string>;
  metricsContentType: string;
  /** A listening socket inherited from the process being replaced (zero-downtime upgrade). */
  inherited?: import('node:net').Server;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Constant-time check of `Authorization: Bearer <token>`. */
export function tokenMatches(header: string | undefined, token: string): boolean {
  const given = /^Bearer\s+(.+)$/i.exec(header ?? '')?.[1] ?? '';
  return timingSafeEqual(digest(given), digest(token));
}

function send(res: http.ServerResponse, status: number, body: unknown, type = 'application/json', allow?: string): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body, null, 2) + '\n';
  const headers: http.OutgoingHttpHeaders = { 'content-type': type, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' };
  if (allow) headers.allow = allow;
  // A 401 names the scheme it wants (RFC 9110 §11.6.1, RFC 6750 §3).
  if (status === 401) headers['www-authenticate'] = 'Bearer realm="scriptgate admin"';
  res.writeHead(status, headers);
  res.end(text);
}

/** Starts the admin server; resolves with it once listening. */
export async function startAdmin(opts: AdminOptions): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    req.resume();
    const token = opts.token();
    if (token !== undefined && !tokenMatches(req.headers.authorization, token)) {
      return send(res, 401, { error: 'admin token required' });
    }
    const url = (req.url ?? '/').split('?')[0];
    const json = (get: () => unknown) => {
      Promise.resolve()
        .then(get)
        .then(
          (body) => send(res, 200, body),
          (err: Error) => send(res, 500, { error: err.message }),
        );
    };
    const get = req.method === 'GET' || req.method === 'HEAD';
    if (get && url === '/status') return json(opts.status);
    if (get && url === '/status/errors') return json(opts.errors);
    if (get && url === '/metrics') {
      opts.metrics().then(
        (text) => send(res, 200, text, opts.metricsContentType),
        (err: Error) => send(res, 500, { error: err.message }),
      );
      return;
    }
    if (req.method === 'POST' && url === '/reload') {
      opts.reload().then((r) => send(res, r.ok ? 200 : 422, r));
      return;
    }
    // RFC 9110 §15.5.6: a 405 names the methods the resource has.
    if (url === '/reload') return send(res, 405, { error: 'method not allowed' }, undefined, 'POST');
    if (url === '/status' || url === '/status/errors' || url === '/metrics') return send(res, 405, { error: 'method not allowed' }, undefined, 'GET, HEAD');
    send(res, 404, { error: 'not found', endpoints: ['GET /status', 'GET /status/errors', 'GET /metrics', 'POST /reload'] });
  });
  const { host, port } = parseHostPort(opts.address)!;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if (opts.inherited) server.listen(opts.inherited, () => resolve());
    else server.listen(port, host, () => resolve());
  });
  opts.logger.info({ admin: `${host}:${(server.address() as { port: number }).port}` }, 'admin listening');
  return server;
}
