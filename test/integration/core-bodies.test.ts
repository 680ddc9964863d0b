import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { request, simpleConfig, startOrigin, startProxy, statusOf } from '../helpers/servers.ts';
import { rawClient } from '../helpers/raw-client.ts';

const MB = 1 << 20;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Sends `body` in 64 KiB writes (chunked, unless `contentLength`), hashes the response as it streams. */
function streamRequest(port: number, body: Buffer, contentLength: boolean): Promise<{ status: number; headers: http.IncomingHttpHeaders; hash: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path: '/upload', agent: false, headers: contentLength ? { 'content-length': body.length } : {} },
      (res) => {
        const h = createHash('sha256');
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          h.update(c);
          bytes += c.length;
        });
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, hash: h.digest('hex'), bytes }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    let off = 0;
    const pump = () => {
      while (off < body.length) {
        const end = Math.min(off + 64 * 1024, body.length);
        const ok = req.write(body.subarray(off, end));
        off = end;
        if (!ok) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}


describe('request and response bodies', () => {
  it('a 20 MB Content-Length request body arrives intact', async () => {
    const origin = await startOrigin((_req, res, body) => res.end(sha(body)));
    const { port } = await startProxy(simpleConfig([origin]));
    const body = randomBytes(20 * MB);
    const res = await request(port, { method: 'POST', path: '/u', body });
    expect(res.status).toBe(200);
    expect(res.text).toBe(sha(body));
    expect(origin.seen[0]!.headers['content-length']).toBe(String(20 * MB));
  });

  it('a 20 MB chunked request body arrives intact and is sent chunked upstream', async () => {
    const origin = await startOrigin((_req, res, body) => res.end(sha(body)));
    const { port } = await startProxy(simpleConfig([origin]));
    const body = randomBytes(20 * MB);
    const res = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/u', agent: false }, (r) => {
        let t = '';
        r.on('data', (c) => (t += c));
        r.on('end', () => resolve(t));
      });
      req.on('error', reject);
      for (let off = 0; off < body.length; off += 256 * 1024) req.write(body.subarray(off, off + 256 * 1024));
      req.end();
    });
    expect(res).toBe(sha(body));
    expect(origin.seen[0]!.headers['transfer-encoding']).toBe('chunked');
    expect(origin.seen[0]!.headers['content-length']).toBeUndefined();
  });

  it('a 20 MB response with Content-Length streams back intact with its Content-Length', async () => {
    const big = randomBytes(20 * MB);
    const origin = await startOrigin((_req, res) => {
      res.writeHead(200, { 'content-length': big.length });
      let off = 0;
      const pump = () => {
        while (off < big.length) {
          const ok = res.write(big.subarray(off, (off += 64 * 1024)));
          if (!ok) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    const { port } = await startProxy(simpleConfig([origin]));
    const res = await streamRequest(port, Buffer.from('x'), true);
    expect(res.status).toBe(200);
    expect(res.headers['content-length']).toBe(String(20 * MB));
    expect(res.headers['transfer-encoding']).toBeUndefined();
    expect(res.bytes).toBe(20 * MB);
    expect(res.hash).toBe(sha(big));
  });

  it('a response without Content-Length streams back chunked', async () => {
    const big = randomBytes(20 * MB);
    const origin = await startOrigin((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      let off = 0;
      const pump = () => {
        while (off < big.length) {
          const ok = res.write(big.subarray(off, (off += 64 * 1024)));
          if (!ok) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    const { port } = await startProxy(simpleConfig([origin]));
    const res = await streamRequest(port, randomBytes(1000), false);
    expect(res.headers['transfer-encoding']).toBe('chunked');
    expect(res.headers['content-length']).toBeUndefined();
    expect(res.hash).toBe(sha(big));
  });

  it('an HTTP/1.0 client gets a chunked origin response close-delimited, whole', async () => {
    const origin = await startOrigin((_req, res) => {
      res.write('part one, ');
      res.end('part two');
    });
    const { port } = await startProxy(simpleConfig([origin]));
    const c = rawClient(port);
    c.socket.write('GET /old HTTP/1.0\r\n\r\n');
    const text = await c.until(() => false);
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).not.toMatch(/transfer-encoding/i);
    expect(text.endsWith('\r\n\r\npart one, part two')).toBe(true);
  });

  it('interim 103 Early Hints from the origin are not forwarded; the final response is', async () => {
    const origin = await startOrigin((_req, res) => {
      res.writeEarlyHints({ link: '</a.css>; rel=preload' }, () => res.end('final'));
    });
    const { port } = await startProxy(simpleConfig([origin]));
    const c = rawClient(port);
    c.socket.write('GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    const text = await c.until(() => false);
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).not.toContain('103');
    expect(text).toMatch(/final(\r\n0\r\n\r\n)?$/);
  });

  it('HEAD keeps the origin Content-Length and sends no body', async () => {
    const origin = await startOrigin((req, res) => {
      if (req.url === '/next') return res.end('next');
      res.writeHead(200, { 'content-length': '1234', 'content-type': 'text/plain' });
      res.end();
    });
    const { port } = await startProxy(simpleConfig([origin]));
    const c = rawClient(port);
    c.socket.write('HEAD /h HTTP/1.1\r\nHost: a.test\r\n\r\nGET /next HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
    const text = await c.until(() => false);
    const responses = text.split(/(?=HTTP\/1\.1 )/);
    expect(responses).toHaveLength(2);
    expect(responses[0]).toMatch(/^HTTP\/1\.1 200 /);
    expect(responses[0]).toMatch(/\r\ncontent-length: 1234\r\n/i);
    expect(responses[0]!.endsWith('\r\n\r\n')).toBe(true); // nothing after the head
    expect(responses[1]).toMatch(/^HTTP\/1\.1 200 [\s\S]*\r\n\r\n(?:4\r\n)?next/);
    expect(origin.seen.map((s) => s.method)).toEqual(['HEAD', 'GET']);
  });

  it.each([204, 304])('%i is forwarded without a body and the connection stays usable', async (status) => {
    const origin = await startOrigin((req, res) => {
      if (req.url === '/next') return res.end('next');
      res.writeHead(status, { etag: '"v1"' });
      res.end();
    });
    const { port } = await startProxy(simpleConfig([origin]));
    const c = rawClient(port);
    c.socket.write('GET /s HTTP/1.1\r\nHost: a.test\r\n\r\nGET /next HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
    const text = await c.until(() => false);
    const responses = text.split(/(?=HTTP\/1\.1 )/);
    expect(responses).toHaveLength(2);
    expect(statusOf(responses[0]!)).toBe(status);
    expect(responses[0]).not.toMatch(/transfer-encoding/i);
    expect(responses[0]!.endsWith('\r\n\r\n')).toBe(true);
    expect(responses[1]).toMatch(/^HTTP\/1\.1 200 [\s\S]*\r\n\r\n(?:4\r\n)?next/);
  });

  it('Expect: 100-continue gets 100 Continue before the body is sent, and the origin never sees Expect', async () => {
    const origin = await startOrigin((_req, res, body) => res.end(`got ${body.toString()}`));
    const { port } = await startProxy(simpleConfig([origin]));
    const c = rawClient(port);
    c.socket.write('POST /e HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n');
    const interim = await c.until((t) => t.includes('\r\n\r\n'));
    expect(interim.startsWith('HTTP/1.1 100 Continue\r\n\r\n')).toBe(true);
    expect(origin.seen).toHaveLength(0);
    c.socket.write('hello');
    const text = await c.until(() => false);
    const final = text.slice('HTTP/1.1 100 Continue\r\n\r\n'.length);
    expect(statusOf(final)).toBe(200);
    expect(final).toMatch(/got hello$/);
    expect(origin.seen).toHaveLength(1);
    expect(origin.seen[0]!.headers.expect).toBeUndefined();
    expect(origin.seen[0]!.body.toString()).toBe('hello');
  });

  it('a request with Expect whose route 404s never gets 100 Continue', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(
      `listen:\n  - address: 127.0.0.1:0\nlog: { level: silent }\nupstreams:\n  up: { targets: ["${origin.address}"] }\nroutes:\n  - match: { path_prefix: /only/ }\n    upstream: up\n`,
    );
    const c = rawClient(port);
    c.socket.write('POST /other HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
    const text = await c.until((t) => /\r\n\r\n[\s\S]*\n$/.test(t));
    c.socket.destroy();
    expect(text).not.toContain('100 Continue');
    expect(statusOf(text)).toBe(404);
    expect(origin.seen).toHaveLength(0);
  });
});
