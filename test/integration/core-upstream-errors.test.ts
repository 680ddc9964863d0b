import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { closeServer, request, simpleConfig, startOrigin, startProxy, type Origin } from '../helpers/servers.ts';

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A TCP server that accepts connections and reads, but never answers. */
async function silentOrigin(): Promise<{ address: string; connections: () => number }> {
  let n = 0;
  const sockets = new Set<net.Socket>();
  const s = net.createServer((sock) => {
    n++;
    sockets.add(sock);
    sock.on('error', () => undefined);
    sock.resume();
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  onTestFinished(() => {
    for (const sock of sockets) sock.destroy();
    return closeServer(s);
  });
  return { address: `127.0.0.1:${(s.address() as net.AddressInfo).port}`, connections: () => n };
}

interface Outcome {
  status: number;
  bytes: number;
  complete: boolean;
  error: string | undefined;
}

/** GET through node:http; resolves on end, error or close with what the client could tell. */
function fetchOutcome(port: number): Promise<Outcome> {
  return new Promise((resolve) => {
    let status = 0;
    let bytes = 0;
    let error: string | undefined;
    let settled = false;
    const done = (complete: boolean) => {
      if (settled) return;
      settled = true;
      resolve({ status, bytes, complete, error });
    };
    const req = http.request({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      status = res.statusCode!;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('aborted', () => (error ??= 'aborted'));
      res.on('error', (e) => (error ??= e.message));
      res.on('end', () => done(res.complete && error === undefined));
      res.on('close', () => done(res.complete && error === undefined));
    });
    req.on('error', (e) => {
      error ??= e.message;
      done(false);
    });
    req.end();
  });
}

describe('upstream failures', () => {
  it('a refused upstream connection gives 502', async () => {
    const port = await closedPort();
    const { port: proxy } = await startProxy(simpleConfig([{ address: `127.0.0.1:${port}` } as Origin]));
    const res = await request(proxy);
    expect(res.status).toBe(502);
  });

  it('an origin whose SYNs go unanswered gives 504 after timeouts.connect', async (ctx) => {
    // A listening socket that never accepts, with its accept queue filled: the kernel then drops
    // further SYNs, so a connect hangs. Node always accepts, so python holds the socket.
    const py = spawn('python3', ['-c', 'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\nsys.stdin.read()'], { stdio: ['pipe', 'pipe', 'ignore'] });
    py.on('error', () => undefined);
    onTestFinished(() => void py.kill('SIGKILL'));
    const port = await new Promise<number>((resolve) => {
      py.stdout!.once('data', (c: Buffer) => resolve(Number(c.toString().trim())));
      py.once('error', () => resolve(0));
    });
    if (!port) return ctx.skip();
    const fillers: net.Socket[] = [];
    onTestFinished(() => fillers.forEach((f) => f.destroy()));
    for (let i = 0; i < 3; i++) {
      const f = net.connect(port, '127.0.0.1');
      f.on('error', () => undefined);
      fillers.push(f);
    }
    await new Promise<void>((r) => fillers[0]!.once('connect', () => r()));
    // Is the queue full? A probe connect must hang; otherwise this kernel does not drop SYNs.
    const hangs = await new Promise<boolean>((resolve) => {
      const probe = net.connect(port, '127.0.0.1');
      fillers.push(probe);
      probe.on('error', () => resolve(false));
      probe.once('connect', () => resolve(false));
      setTimeout(() => resolve(true), 200);
    });
    if (!hangs) return ctx.skip();
    const { port: proxy } = await startProxy(simpleConfig([{ address: `127.0.0.1:${port}` } as Origin], '    timeouts: { connect: 300ms }\n'));
    const t0 = performance.now();
    const res = await request(proxy);
    const ms = performance.now() - t0;
    expect(res.status).toBe(504);
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(3000);
  });

  it('an origin response with both Content-Length and Transfer-Encoding gives 502, never a smuggled body', async () => {
    const origin = await startOrigin((_req, res) => {
      res.socket!.end('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
    });
    const { port } = await startProxy(simpleConfig([origin]));
    const res = await request(port);
    expect(res.status).toBe(502);
  });

  it('an origin response with a transfer coding other than chunked (gzip, chunked) gives 502, never coded bytes with no coding named', async () => {
    const origin = await startOrigin((_req, res) => {
      res.socket!.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
    });
    const { port } = await startProxy(simpleConfig([origin]));
    expect((await request(port)).status).toBe(502);
  });

  it('an origin that answers with garbage gives 502', async () => {
    const origin = await startOrigin((_req, res) => {
      res.socket!.end('NOT HTTP AT ALL\r\n\r\n');
    });
    const { port } = await startProxy(simpleConfig([origin]));
    expect((await request(port)).status).toBe(502);
  });

  it('an origin that accepts but never answers gives 504 after timeouts.read', async () => {
    const silent = await silentOrigin();
    const { port } = await startProxy(simpleConfig([{ address: silent.address } as Origin], '    timeouts: { read: 300ms }\n'));
    const t0 = performance.now();
    const res = await request(port);
    const ms = performance.now() - t0;
    expect(res.status).toBe(504);
    expect(ms).toBeGreaterThanOrEqual(250);
    // undici checks its parser timeouts on a ~500 ms tick, so 300 ms fires after 0.3–1.3 s.
    expect(ms).toBeLessThan(3000);
    expect(silent.connections()).toBe(1);
  });

  it('an origin that stalls in the middle of its body gets the client response aborted after timeouts.read', async () => {
    const origin = await startOrigin((_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('x'.repeat(10)); // and nothing more
    });
    const { port } = await startProxy(simpleConfig([origin], '    timeouts: { read: 300ms }\n'));
    const out = await fetchOutcome(port);
    expect(out.status).toBe(200);
    expect(out.complete).toBe(false);
    expect(out.bytes).toBeLessThan(100);
  });

  for (const kind of ['content-length', 'chunked'] as const) {
    it(`an origin that dies mid-body (${kind}) gets the client response aborted, never completed`, async () => {
      const origin = await startOrigin((_req, res) => {
        res.writeHead(200, kind === 'content-length' ? { 'content-length': String(1 << 20) } : { 'content-type': 'text/plain' });
        res.write(Buffer.alloc(64 * 1024, 'a'), () => setTimeout(() => res.socket!.destroy(), 20));
      });
      const { port } = await startProxy(simpleConfig([origin]));
      const out = await fetchOutcome(port);
      expect(out.status).toBe(200);
      expect(out.complete).toBe(false);
      expect(out.error).toBeDefined();
      expect(out.bytes).toBeLessThan(1 << 20);
    });
  }

  it('after an aborted response the proxy keeps serving', async () => {
    let n = 0;
    const origin = await startOrigin((_req, res) => {
      if (n++ === 0) {
        res.writeHead(200, { 'content-length': '1000' });
        res.write('partial', () => res.socket!.destroy());
      } else res.end('fine');
    });
    const { port } = await startProxy(simpleConfig([origin]));
    expect((await fetchOutcome(port)).complete).toBe(false);
    const res = await request(port);
    expect(res.status).toBe(200);
    expect(res.text).toBe('fine');
  });
});
