/**
 * The demo's origins: small HTTP servers that behave like one.one.one.one in Pingora's story —
 * 403 unless the Host header is `one.one.one.one`, else 200 with a line naming the origin.
 * Used by `scriptgate demo` (npm start) and by the example's tests.
 */
import http from 'node:http';

export const DEMO_HOST = 'one.one.one.one';

/** Starts one origin on 127.0.0.1:`port` (0 = any free port); resolves with the server and its port. */
export function startDemoOrigin(name: string, port = 0): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer((req, res) => {
    req.resume();
    const host = (req.headers.host ?? '').toLowerCase();
    if (host !== DEMO_HOST) {
      res.writeHead(403, { 'content-type': 'text/plain', 'x-origin': name });
      res.end(`403 Forbidden: ${name} only answers for Host ${DEMO_HOST} (got ${JSON.stringify(host)})\n`);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'x-origin': name });
    res.end(`hello from ${name} (${req.method} ${req.url}, Host ${host})\n`);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port }));
  });
}
