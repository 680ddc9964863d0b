import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { request, startOrigin, startProxy, type Origin } from '../helpers/servers.ts';

function config(origins: Origin[], extra: string): string {
  return `listen:\n  - address: 127.0.0.1:0\nlog: { level: silent }\nupstreams:\n  up:\n    targets: [${origins.map((o) => `"${o.address}"`).join(', ')}]\n${extra}routes:\n  - upstream: up\n`;
}

async function origins(n: number, handler?: Parameters<typeof startOrigin>[0]): Promise<Origin[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => startOrigin(handler, String.fromCharCode(97 + i))));
}

/** Sends `n` requests `width` at a time; returns the x-origin of each. */
async function spread(port: number, n: number, headers: (i: number) => http.OutgoingHttpHeaders = () => ({}), width = 8): Promise<string[]> {
  const out: string[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) {
        const i = next++;
        const res = await request(port, { path: `/${i}`, headers: headers(i) });
        expect(res.status).toBe(200);
        out[i] = res.headers['x-origin'] as string;
      }
    }),
  );
  return out;
}

describe('upstream balancing algorithms', () => {
  it('random spreads 600 requests over 3 targets within ±30% of even', async () => {
    const os = await origins(3);
    const { port } = await startProxy(config(os, '    balance: random\n'));
    await spread(port, 600);
    for (const o of os) {
      expect(o.seen.length).toBeGreaterThan(140);
      expect(o.seen.length).toBeLessThan(260);
    }
  });

  it('round_robin spreads exactly evenly under concurrency', async () => {
    const os = await origins(3);
    const { port } = await startProxy(config(os, ''));
    await spread(port, 300);
    for (const o of os) expect(o.seen).toHaveLength(100);
  });

  it('consistent_hash on a header is sticky per key and uses every target', async () => {
    const os = await origins(3);
    const { port } = await startProxy(config(os, '    balance: consistent_hash\n    hash_key: header:x-user\n'));
    const first = await spread(port, 120, (i) => ({ 'x-user': `u${i % 60}` }));
    for (let i = 0; i < 60; i++) expect(first[i + 60]).toBe(first[i]);
    expect(new Set(first).size).toBe(3);
  });

  it('consistent_hash on a cookie: adding a 4th target remaps at most ~1/4 of the keys, all to the new one; removing one keeps the others', async () => {
    const os = await origins(4);
    const key = (i: number) => ({ cookie: `theme=dark; sid=s${i}; x=1` });
    const three = await startProxy(config(os.slice(0, 3), '    balance: consistent_hash\n    hash_key: cookie:sid\n'));
    const four = await startProxy(config(os, '    balance: consistent_hash\n    hash_key: cookie:sid\n'));
    const two = await startProxy(config([os[0]!, os[2]!], '    balance: consistent_hash\n    hash_key: cookie:sid\n'));
    const a = await spread(three.port, 400, key);
    const b = await spread(four.port, 400, key);
    const c = await spread(two.port, 400, key);
    let moved = 0;
    for (let i = 0; i < 400; i++) {
      if (a[i] === b[i]) continue;
      moved++;
      expect(b[i]).toBe('d');
    }
    expect(moved / 400).toBeGreaterThan(0.1);
    expect(moved / 400).toBeLessThan(0.35);
    for (let i = 0; i < 400; i++) if (a[i] !== 'b') expect(c[i]).toBe(a[i]);
  });

  it('consistent_hash on client_ip (the default key) sends one client to one target', async () => {
    const os = await origins(3);
    const { port } = await startProxy(config(os, '    balance: consistent_hash\n'));
    const seq = await spread(port, 30);
    expect(new Set(seq).size).toBe(1);
  });

  it('least_conn sends new requests to the idle target while the other holds one', async () => {
    const held: http.ServerResponse[] = [];
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (req.url === '/hold') return void held.push(res);
      res.writeHead(200, { 'x-origin': (req.socket.localPort ?? 0).toString() });
      res.end('ok');
    };
    const os = await origins(2, handler);
    const { port } = await startProxy(config(os, '    balance: least_conn\n'));
    const holding = request(port, { path: '/hold' });
    await expect.poll(() => held.length, { interval: 5 }).toBe(1);
    const busy = os.find((o) => o.seen.some((s) => s.url === '/hold'))!;
    const idle = os.find((o) => o !== busy)!;
    for (let i = 0; i < 10; i++) expect((await request(port)).headers['x-origin']).toBe(String(idle.port));
    expect(busy.seen).toHaveLength(1);
    held[0]!.writeHead(200, { 'x-origin': 'held' }).end('done');
    expect((await holding).status).toBe(200);
  });

  it('ewma keeps a 60 ms target to a small share next to a fast one', async () => {
    const fast = await startOrigin(undefined, 'fast');
    const slow = await startOrigin((_req, res) => setTimeout(() => res.writeHead(200, { 'x-origin': 'slow' }).end('slow'), 60), 'slow');
    const { port } = await startProxy(config([slow, fast], '    balance: ewma\n'));
    const seq: string[] = [];
    for (let i = 0; i < 60; i++) seq.push((await request(port)).headers['x-origin'] as string);
    const slowShare = seq.filter((s) => s === 'slow').length / seq.length;
    expect(slowShare).toBeLessThan(0.1);
  });
});
