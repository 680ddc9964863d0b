import net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { closeServer, request, startOrigin, startProxy, type Origin } from '../helpers/servers.ts';
import { captureLogs } from '../helpers/log-capture.ts';

function config(targets: string[], extra = ''): string {
  return `listen:\n  - address: 127.0.0.1:0\nlog: { level: silent }\nupstreams:\n  up:\n    targets: [${targets.map((t) => `"${t}"`).join(', ')}]\n    passive: { max_fails: 0 }\n${extra}routes:\n  - upstream: up\n`;
}

/** An origin that reads the whole request and then drops the connection without answering. */
async function dropper(): Promise<Origin> {
  return startOrigin((req) => req.socket.destroy(), 'dropper');
}

async function closedPort(): Promise<string> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await closeServer(s);
  return `127.0.0.1:${port}`;
}

describe('upstream retries and failover', () => {
  it('a GET whose connection breaks after it was sent is retried on another target', async () => {
    const bad = await dropper();
    const good = await startOrigin(undefined, 'good');
    const { port } = await startProxy(config([bad.address, good.address]));
    const res = await request(port, { path: '/x' });
    expect(res.status).toBe(200);
    expect(res.headers['x-origin']).toBe('good');
    expect(bad.seen).toHaveLength(1);
    expect(good.seen).toHaveLength(1);
  });

  it('a POST whose connection breaks after it was sent is not retried (502)', async () => {
    const bad = await dropper();
    const good = await startOrigin(undefined, 'good');
    const { port } = await startProxy(config([bad.address, good.address]));
    const res = await request(port, { method: 'POST', path: '/x', body: 'pay once' });
    expect(res.status).toBe(502);
    expect(bad.seen).toHaveLength(1);
    expect(good.seen).toHaveLength(0);
  });

  it('a POST whose target refuses the connection is retried (nothing was sent), streamed body intact', async () => {
    const dead = await closedPort();
    const good = await startOrigin(undefined, 'good');
    const { port } = await startProxy(config([dead, good.address]));
    const res = await request(port, { method: 'POST', path: '/x', body: 'hello body' });
    expect(res.status).toBe(200);
    expect(good.seen[0]!.body.toString()).toBe('hello body');
  });

  it('a small PUT body is buffered and replayed after a broken try', async () => {
    const bad = await dropper();
    const good = await startOrigin(undefined, 'good');
    const { port } = await startProxy(config([bad.address, good.address]));
    const body = 'x'.repeat(10_000);
    const res = await request(port, { method: 'PUT', path: '/doc', body });
    expect(res.status).toBe(200);
    expect(bad.seen[0]!.body.toString()).toBe(body);
    expect(good.seen[0]!.body.toString()).toBe(body);
  });

  it('a PUT body over retry_body_limit is streamed and so not retried after it was sent', async () => {
    const bad = await dropper();
    const good = await startOrigin(undefined, 'good');
    const { port } = await startProxy(config([bad.address, good.address], '    retry_body_limit: 1kb\n'));
    const res = await request(port, { method: 'PUT', path: '/doc', body: 'y'.repeat(4096) });
    expect(res.status).toBe(502);
    expect(good.seen).toHaveLength(0);
  });

  it('retries are bounded by `retries`: three dropping targets and retries: 1 → two tries, 502', async () => {
    const drops = [await dropper(), await dropper(), await dropper()];
    const { port } = await startProxy(config(drops.map((d) => d.address), '    retries: 1\n'));
    expect((await request(port)).status).toBe(502);
    expect(drops.reduce((n, d) => n + d.seen.length, 0)).toBe(2);
  });

  it("the access log's retries counts retries made: 0 for one refused target, 2 for three refused ones", async () => {
    const logs = captureLogs();
    const one = await startProxy(config([await closedPort()], '    retries: 2\n').replace('log: { level: silent }', 'log: { level: info, access_log: { fields: [path, status, retries] } }'), {}, logs.logger);
    expect((await request(one.port, { path: '/one' })).status).toBe(502);
    expect((await logs.waitFor((l) => l.msg === 'access' && l.path === '/one')).retries).toBe(0);
    const three = await startProxy(config([await closedPort(), await closedPort(), await closedPort()], '    retries: 5\n').replace('log: { level: silent }', 'log: { level: info, access_log: { fields: [path, status, retries] } }'), {}, logs.logger);
    expect((await request(three.port, { path: '/three' })).status).toBe(502);
    expect((await logs.waitFor((l) => l.msg === 'access' && l.path === '/three')).retries).toBe(2);
  });

  it('retries are bounded by retry_timeout: a try that failed after the budget is not repeated', async () => {
    const slowDrop = await startOrigin((req) => setTimeout(() => req.socket.destroy(), 150));
    const good = await startOrigin(undefined, 'good');
    const { port } = await startProxy(config([slowDrop.address, good.address], '    retries: 3\n    retry_timeout: 50ms\n'));
    expect((await request(port)).status).toBe(502);
    expect(good.seen).toHaveLength(0);
  });

  it('a read timeout on an idempotent request is retried on the next target', async () => {
    const hang = await startOrigin(() => undefined);
    onTestFinished(() => hang.server.closeAllConnections());
    const good = await startOrigin(undefined, 'good');
    const { port } = await startProxy(config([hang.address, good.address], '    timeouts: { read: 150ms }\n'));
    const res = await request(port);
    expect(res.status).toBe(200);
    expect(res.headers['x-origin']).toBe('good');
  });
});

describe('a keep-alive connection the origin closed as the request arrived', () => {
  /**
   * An origin that answers the first request of each connection and closes the connection when
   * the next one arrives (an idle timeout racing the request): with a FIN, or with a RST (`reset`).
   */
  async function closesOnSecond(reset = false): Promise<Origin & { requests: string[] }> {
    const requests: string[] = [];
    const origin = await startOrigin((req, res) => {
      const socket = req.socket as net.Socket & { sgServed?: number };
      socket.sgServed = (socket.sgServed ?? 0) + 1;
      requests.push(`${req.method} ${req.url} #${socket.sgServed}`);
      if (socket.sgServed > 1) return reset ? socket.resetAndDestroy() : socket.destroy();
      res.end('fresh');
    }, 'racy');
    return Object.assign(origin, { requests });
  }

  it('under concurrency a resend may meet another stale idle connection, and goes on until a fresh one answers', async () => {
    const origin = await closesOnSecond();
    const { port } = await startProxy(config([origin.address], '    retries: 0\n').replace('max_fails: 0', 'max_fails: 1, cooldown: 30s'));
    // Ten connections, each answered once: ten stale ones idle in the pool.
    for (const r of await Promise.all(Array.from({ length: 10 }, (_, i) => request(port, { path: `/warm${i}` })))) expect(r.status).toBe(200);
    // Ten clients in a loop (as wrk): a resend may meet several stale connections in turn before a new one answers it.
    const statuses: number[] = [];
    await Promise.all(
      Array.from({ length: 10 }, async (_, c) => {
        for (let i = 0; i < 8; i++) statuses.push((await request(port, { path: `/again${c}/${i}` })).status);
      }),
    );
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
  });

  it('the same when the origin resets the connection (RST) instead of closing it', async () => {
    const origin = await closesOnSecond(true);
    const { port } = await startProxy(config([origin.address], '    retries: 0\n').replace('max_fails: 0', 'max_fails: 1, cooldown: 30s'));
    for (let i = 0; i < 4; i++) expect((await request(port, { path: `/g${i}` })).status, `request ${i}`).toBe(200);
    for (let i = 1; i < 4; i++) expect(origin.requests.filter((r) => r.startsWith(`GET /g${i} `)).at(-1)).toBe(`GET /g${i} #1`);
  });

  it('a GET is sent again on a new connection (not a 502, not a retry, not a failure), as nginx does for a cached connection', async () => {
    const origin = await closesOnSecond();
    const { port } = await startProxy(config([origin.address], '    retries: 0\n').replace('max_fails: 0', 'max_fails: 1, cooldown: 30s'));
    for (let i = 0; i < 4; i++) {
      const res = await request(port, { path: `/g${i}` });
      expect(res.status, `request ${i}`).toBe(200);
      expect(res.text).toBe('fresh');
    }
    // each request after the first met a reused connection at least once, and was answered on a fresh one
    for (let i = 1; i < 4; i++) expect(origin.requests.filter((r) => r.startsWith(`GET /g${i} `)).at(-1)).toBe(`GET /g${i} #1`);
  });

  it('a small PUT body is kept, so a PUT is resent the same way (retries: 0)', async () => {
    const origin = await closesOnSecond();
    const { port } = await startProxy(config([origin.address], '    retries: 0\n'));
    expect((await request(port, { path: '/g' })).status).toBe(200);
    const put = await request(port, { method: 'PUT', path: '/doc', body: 'same body' });
    expect(put.status).toBe(200);
    expect(origin.seen.filter((r) => r.method === 'PUT').map((r) => r.body.toString())).toEqual(['same body', 'same body']);
  });

  it('a POST is not sent twice: 502', async () => {
    const origin = await closesOnSecond();
    const { port } = await startProxy(config([origin.address], '    retries: 0\n'));
    expect((await request(port, { path: '/g' })).status).toBe(200);
    expect((await request(port, { method: 'POST', path: '/p', body: 'once' })).status).toBe(502);
    expect(origin.requests.filter((r) => r.startsWith('POST'))).toHaveLength(1);
  });
});
