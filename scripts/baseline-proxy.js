#!/usr/bin/env node
// Bare pass-through reverse proxy: node:http server + one undici Pool (keep-alive, 128
// connections) to one upstream. No routing, no logs, no features: the best a Node proxy can do,
// the baseline scriptgate is measured against. Streams both bodies with back-pressure and copies
// headers minus hop-by-hop ones.
//
//   node scripts/baseline-proxy.js <listen-port> <upstream host:port>
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

const server = http.createServer((req, res) => {
  const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
  pool.request(
    { method: req.method, path: req.url, headers: requestHeaders(req.rawHeaders), body: hasBody ? req : null },
    (err, up) => {
      if (err) {
        if (!res.headersSent) {
          res.writeHead(502, { 'content-type': 'text/plain' });
          res.end('bad gateway\n');
        } else res.destroy();
        return;
      }
      res.writeHead(up.statusCode, responseHeaders(up.headers));
      // Head and first chunk (often the whole body) leave in one write.
      res.cork();
      process.nextTick(() => res.uncork());
      const body = up.body;
      body.on('data', (chunk) => {
        if (!res.write(chunk)) {
          body.pause();
          res.once('drain', () => body.resume());
        }
      });
      body.on('end', () => res.end());
      body.on('error', () => res.destroy());
      // Client gone: stop reading so the upstream connection is released.
      res.on('close', () => {
        if (!res.writableFinished) body.destroy();
      });
    },
  );
});
server.keepAliveTimeout = 120_000;
server.listen(port, '127.0.0.1');
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
