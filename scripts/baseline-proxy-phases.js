#!/usr/bin/env node
// baseline-proxy.js (bare node:http + undici Pool pass-through) plus the five phase tasks of the
// benchmark (../shared/bench-reference/lua.conf) as plain, unsandboxed JS in the same process:
//   rewrite       strip the /api prefix (/api/small -> /small)
//   access        403 when an x-block request header is present
//   header_filter add x-proxy: baseline
//   body_filter   uppercase every chunk (the body is changed, so it goes chunked, as in scriptgate)
//   log           increment a counter in a shared map after the response is done
// It is the cost of the tasks themselves with no sandbox, for comparison with scriptgate's five
// sandboxed phases.
//
//   node scripts/baseline-proxy-phases.js <listen-port> <upstream host:port>
//   (or LISTEN_PORT / UPSTREAM env vars)
import http from 'node:http';
import { Pool } from 'undici';

const port = Number(process.argv[2] ?? process.env.LISTEN_PORT ?? 8081);
const upstream = process.argv[3] ?? process.env.UPSTREAM ?? '127.0.0.1:8080';

const pool = new Pool(`http://${upstream}`, { connections: 128, pipelining: 1, keepAliveTimeout: 120_000, keepAliveMaxTimeout: 120_000 });

const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'proxy-authorization']);

/** Flat [name, value, …] request headers minus hop-by-hop (and those Connection names). */
function requestHeaders(raw) {
  let extra;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 10 && raw[i].toLowerCase() === 'connection') {
      for (const t of raw[i + 1].split(',')) (extra ??= new Set()).add(t.trim().toLowerCase());
    }
  }
  const out = [];
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i].toLowerCase();
    if (HOP.has(k) || extra?.has(k)) continue;
    out.push(k, raw[i + 1]);
  }
  return out;
}

/** undici's response headers object minus hop-by-hop ones. */
function responseHeaders(h) {
  const extra = h.connection ? new Set(String(h.connection).split(',').map((t) => t.trim().toLowerCase())) : undefined;
  const out = {};
  for (const k in h) {
    if (HOP.has(k) || extra?.has(k)) continue;
    out[k] = h[k];
  }
  return out;
}

/** ngx.shared-style dict stand-in for the log phase. */
const stats = new Map();
const incr = (key, by, init) => {
  const v = (stats.get(key) ?? init) + by;
  stats.set(key, v);
  return v;
};

const server = http.createServer((req, res) => {
  // log: after the response is done (or the client went away), never delaying it
  res.once('close', () => incr('requests', 1, 0));

  // rewrite: strip the /api prefix
  let path = req.url;
  if (path.startsWith('/api/')) path = path.slice(4);

  // access: reject when x-block is present
  if (req.headers['x-block'] !== undefined) {
    res.writeHead(403, { 'content-type': 'text/plain', 'content-length': '10' });
    res.end('forbidden\n');
    return;
  }

  const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
  pool.request(
    { method: req.method, path, headers: requestHeaders(req.rawHeaders), body: hasBody ? req : null },
    (err, up) => {
      if (err) {
        if (!res.headersSent) {
          res.writeHead(502, { 'content-type': 'text/plain' });
          res.end('bad gateway\n');
        } else res.destroy();
        return;
      }
      // header_filter: add a response header; the body filter changes the body, so no length
      const headers = responseHeaders(up.headers);
      headers['x-proxy'] = 'baseline';
      delete headers['content-length'];
      res.writeHead(up.statusCode, headers);
      // Head and first chunk (often the whole body) leave in one write.
      res.cork();
      process.nextTick(() => res.uncork());
      const body = up.body;
      body.on('data', (chunk) => {
        // body_filter: uppercase every chunk
        const out = Buffer.from(chunk.toString('latin1').toUpperCase(), 'latin1');
        if (!res.write(out)) {
          body.pause();
          res.once('drain', () => body.resume());
        }
      });
      body.on('end', () => res.end());
      body.on('error', () => res.destroy());
      res.on('close', () => {
        if (!res.writableFinished) body.destroy();
      });
    },
  );
});
server.keepAliveTimeout = 120_000;
server.listen(port, '127.0.0.1');
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
