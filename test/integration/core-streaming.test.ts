/**
 * Back-pressure and aborts: bodies flow at the pace of the slower side, are never buffered whole,
 * and a side that goes away takes the other leg of the exchange with it.
 */
import http from 'node:http';
import net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { closeServer, request, simpleConfig, startOrigin, startProxy, type Origin } from '../helpers/servers.ts';

const MB = 1 << 20;

/** Resolves once `value()` has not changed for `quietMs` (checked every 50 ms); rejects after `maxMs`. */
function settled(value: () => number, quietMs = 300, maxMs = 8000): Promise<number> {
  return new Promise((resolve, reject) => {
    let last = value();
    let since = Date.now();
    const t0 = Date.now();
    const timer = setInterval(() => {
      const v = value();
      if (v !== last) {
        last = v;
        since = Date.now();
      } else if (Date.now() - since >= quietMs) {
        clearInterval(timer);
        resolve(v);
      }
      if (Date.now() - t0 > maxMs) {
        clearInterval(timer);
        reject(new Error(`value kept changing (${v})`));
      }
    }, 50);
  });
}

/** A plain origin server (no helper recording) closed after the test. */
async function origin(handler: http.RequestListener): Promise<Origin> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onTestFinished(() => closeServer(server));
  const port = (server.address() as net.AddressInfo).port;
  return { port, address: `127.0.0.1:${port}`, seen: [], server };
}

describe('back-pressure', () => {
  it('a client that stops reading stalls the origin instead of the proxy buffering the response', async () => {
    const TOTAL = 48 * MB;
    const block = Buffer.alloc(MB, 'r');
    let written = 0;
    const o = await origin((_req, res) => {
      res.writeHead(200, { 'content-length': TOTAL });
      const pump = () => {
        while (written < TOTAL) {
          written += block.length;
          if (!res.write(block)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    const { port } = await startProxy(simpleConfig([o]));
    const socket = net.connect(port, '127.0.0.1');
    onTestFinished(() => void socket.destroy());
    socket.pause();
    socket.write('GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    const stalledAt = await settled(() => written);
    expect(stalledAt).toBeLessThan(24 * MB); // about 8–10 MB sit in socket buffers on loopback
    // Reading again drains everything, intact in length.
    let got = 0;
    let head = true;
    await new Promise<void>((resolve) => {
      socket.on('data', (c: Buffer) => {
        if (head) {
          const i = c.indexOf('\r\n\r\n');
          if (i >= 0) {
            head = false;
            got += c.length - i - 4;
          }
        } else got += c.length;
      });
      socket.on('end', () => resolve());
      socket.resume();
    });
    expect(got).toBe(TOTAL);
  });

  it('an origin that stops reading stalls the client upload instead of the proxy buffering the request', async () => {
    let paused: http.IncomingMessage | undefined;
    let received = 0;
    const o = await origin((req, res) => {
      paused = req;
      req.pause();
      req.on('data', (c: Buffer) => (received += c.length));
      req.on('end', () => res.end(`got ${received}`));
    });
    const { port } = await startProxy(simpleConfig([o]));
    const TOTAL = 48 * MB;
    const block = Buffer.alloc(MB, 'u');
    let written = 0;
    const result = new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/up', agent: false, headers: { 'content-length': TOTAL } }, (res) => {
        let t = '';
        res.on('data', (c) => (t += c));
        res.on('end', () => resolve(t));
      });
      req.on('error', reject);
      const pump = () => {
        while (written < TOTAL) {
          written += block.length;
          if (!req.write(block)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    });
    const stalledAt = await settled(() => written);
    expect(stalledAt).toBeLessThan(24 * MB); // about 8–10 MB sit in socket buffers on loopback
    expect(paused).toBeDefined();
    paused!.resume();
    expect(await result).toBe(`got ${TOTAL}`);
  });
});

describe('aborts', () => {
  it('a client that disconnects mid-response gets the upstream request aborted', async () => {
    let originClosed!: () => void;
    const closed = new Promise<void>((r) => (originClosed = r));
    const o = await origin((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first chunk');
      res.on('close', () => originClosed());
      // and never ends
    });
    const { port } = await startProxy(simpleConfig([o]));
    await new Promise<void>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
    });
    await closed;
  });

  it('a client that disconnects mid-upload gets the upstream request aborted before the body completes', async () => {
    let originAborted!: (complete: boolean) => void;
    const aborted = new Promise<boolean>((r) => (originAborted = r));
    let started!: () => void;
    const arrived = new Promise<void>((r) => (started = r));
    const o = await origin((req, res) => {
      started();
      req.on('data', () => undefined);
      req.on('close', () => originAborted(req.complete));
      req.on('end', () => res.end('whole'));
    });
    const { port } = await startProxy(simpleConfig([o]));
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(`POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ${MB}\r\n\r\n`);
    socket.write(Buffer.alloc(64 * 1024, 'p'));
    await arrived;
    socket.destroy();
    expect(await aborted).toBe(false);
  });

  it('sequential requests reuse one keep-alive connection to the origin', async () => {
    const o = await startOrigin();
    let connections = 0;
    o.server.on('connection', () => connections++);
    const { port } = await startProxy(simpleConfig([o]));
    for (let i = 0; i < 5; i++) expect((await request(port, { path: `/${i}` })).status).toBe(200);
    expect(o.seen).toHaveLength(5);
    expect(connections).toBe(1);
  });
});

describe('graceful shutdown in process', () => {
  it('a response in flight on a keep-alive connection completes with Connection: close, then the connection ends', async () => {
    let arrived!: () => void;
    const inFlight = new Promise<void>((r) => (arrived = r));
    let release!: () => void;
    const o = await origin((_req, res) => {
      arrived();
      release = () => res.end('done');
    });
    const { port, server } = await startProxy(simpleConfig([o]));
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    socket.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    await inFlight;
    const drained = server.shutdown(true, 5000);
    // New connections are refused while the old one drains.
    await expect(request(port)).rejects.toThrow(/ECONNREFUSED/);
    release();
    await closed;
    await drained;
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).toMatch(/\r\nConnection: close\r\n/i);
    expect(text).toMatch(/done(\r\n0\r\n\r\n)?$/);
  });
});
