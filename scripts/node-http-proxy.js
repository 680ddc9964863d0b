#!/usr/bin/env node
// node-http-proxy (the `http-proxy` package) as a plain pass-through with a keep-alive agent of
// 128 sockets: the common "Node reverse proxy" the benchmark compares scriptgate with.
//
//   node scripts/node-http-proxy.js <listen-port> <upstream host:port>
//   (or LISTEN_PORT / UPSTREAM env vars)
import http from 'node:http';
import httpProxy from 'http-proxy';

const port = Number(process.argv[2] ?? process.env.LISTEN_PORT ?? 8082);
const upstream = process.argv[3] ?? process.env.UPSTREAM ?? '127.0.0.1:8080';

const agent = new http.Agent({ keepAlive: true, maxSockets: 128, maxFreeSockets: 128, keepAliveMsecs: 120_000 });
const proxy = httpProxy.createProxyServer({ target: `http://${upstream}`, agent });
proxy.on('error', (err, req, res) => {
  if (res && typeof res.writeHead === 'function' && !res.headersSent) {
    res.writeHead(502, { 'content-type': 'text/plain' });
    res.end('bad gateway\n');
  } else res?.destroy?.();
});

const server = http.createServer((req, res) => proxy.web(req, res));
server.keepAliveTimeout = 120_000;
server.listen(port, '127.0.0.1');
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
