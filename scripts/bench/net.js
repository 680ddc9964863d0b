// Loopback helpers: a free port, waiting for a port to accept (bounded TCP-connect polling), and
// a small HTTP GET with a deadline for the correctness checks.
import net from 'node:net';
import http from 'node:http';

export const HOST = '127.0.0.1';

/** A port the kernel says is free right now (bind to 0, read it, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function tryConnect(port, timeoutMs) {
  return new Promise((resolve) => {
    const s = net.connect({ host: HOST, port });
    const done = (ok) => {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    };
    const t = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/**
 * Poll a TCP connect to 127.0.0.1:port every `everyMs` until it succeeds or `timeoutMs` passes.
 * `isDead()` lets the caller stop early when the process that should listen has exited.
 */
export async function waitForPort(port, { timeoutMs = 15_000, everyMs = 100, isDead = () => false } = {}) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await tryConnect(port, 500)) return true;
    if (isDead()) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return false;
}

/** GET http://127.0.0.1:port+path → {status, headers, body(Buffer)}; rejects after timeoutMs. */
export function get(port, path, { headers = {}, timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: HOST, port, path, headers, agent: false, timeout: timeoutMs }, (res) => {
      const chunks = [];
      let size = 0;
      res.on('data', (c) => {
        size += c.length;
        if (size > 16 * 1024 * 1024) req.destroy(new Error('response larger than 16 MiB'));
        else chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}
