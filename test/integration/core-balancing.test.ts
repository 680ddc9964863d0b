import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { request, startOrigin, startProxy } from '../helpers/servers.ts';

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function config(targets: string, extra = ''): string {
  return `listen:\n  - address: 127.0.0.1:0\nlog: { level: silent }\nupstreams:\n  up:\n    targets: ${targets}\n${extra}routes:\n  - upstream: up\n`;
}

async function names(port: number, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const res = await request(port, { path: `/${i}` });
    expect(res.status).toBe(200);
    out.push(res.headers['x-origin'] as string);
  }
  return out;
}

describe('balancing', () => {
  it('round-robin over two targets alternates exactly', async () => {
    const a = await startOrigin(undefined, 'a');
    const b = await startOrigin(undefined, 'b');
    const { port } = await startProxy(config(`["${a.address}", "${b.address}"]`));
    const seq = await names(port, 20);
    for (let i = 1; i < seq.length; i++) expect(seq[i]).not.toBe(seq[i - 1]);
    expect(a.seen).toHaveLength(10);
    expect(b.seen).toHaveLength(10);
  });

  it('weights 1:3 give exactly 25/75 over 100 requests, never more than 3 in a row for the heavy one', async () => {
    const a = await startOrigin(undefined, 'a');
    const b = await startOrigin(undefined, 'b');
    const { port } = await startProxy(config(`[{ address: "${a.address}", weight: 1 }, { address: "${b.address}", weight: 3 }]`));
    const seq = await names(port, 100);
    expect(a.seen).toHaveLength(25);
    expect(b.seen).toHaveLength(75);
    // Every window of 4 consecutive picks holds exactly one `a` (smooth weighted round-robin).
    for (let i = 0; i + 4 <= seq.length; i += 4) expect(seq.slice(i, i + 4).filter((x) => x === 'a')).toHaveLength(1);
  });

  it('failover: with one target refusing connections every GET is still 200 from the other (retries: 1 default)', async () => {
    const live = await startOrigin(undefined, 'live');
    const dead = await closedPort();
    const { port } = await startProxy(config(`["127.0.0.1:${dead}", "${live.address}"]`));
    const seq = await names(port, 10);
    expect(seq).toEqual(Array(10).fill('live'));
    expect(live.seen).toHaveLength(10);
  });

  it('with retries: 0 a refused target is not retried and the client gets 502', async () => {
    const live = await startOrigin(undefined, 'live');
    const dead = await closedPort();
    const { port } = await startProxy(config(`["127.0.0.1:${dead}", "${live.address}"]`, '    retries: 0\n'));
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await request(port)).status);
    expect(statuses.sort()).toEqual([200, 200, 502, 502]);
  });

  it('when every target refuses, the client gets 502', async () => {
    const d1 = await closedPort();
    const d2 = await closedPort();
    const { port } = await startProxy(config(`["127.0.0.1:${d1}", "127.0.0.1:${d2}"]`));
    expect((await request(port)).status).toBe(502);
  });
});
