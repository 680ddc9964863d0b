import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { closeServer, request, startOrigin, startProxy } from '../helpers/servers.ts';

async function closedPort(): Promise<string> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await closeServer(s);
  return `127.0.0.1:${port}`;
}

function config(upstreams: Record<string, string[]>, extra = ''): string {
  const ups = Object.entries(upstreams)
    .map(([name, ts]) => `  ${name}:\n    targets: [${ts.map((t) => `"${t}"`).join(', ')}]\n    passive: { max_fails: 0 }\n${extra}`)
    .join('');
  return `listen:\n  - address: 127.0.0.1:0\nlog: { level: silent }\nupstreams:\n${ups}routes:\n  - upstream: ${Object.keys(upstreams)[0]}\n    balancer_by_script: balancer.ts\n`;
}

describe('balancer_by_script', () => {
  it('picks the target from a request header (shard routing)', async () => {
    const a = await startOrigin(undefined, 'a');
    const b = await startOrigin(undefined, 'b');
    const script = `import type { BalancerContext } from 'scriptgate/runtime-api';
export default function balancer(ctx: BalancerContext) {
  const shard = ctx.request.headers.get('x-shard');
  const t = ctx.balancer.targets[shard === 'b' ? 1 : 0];
  if (t) ctx.balancer.pick(t.address);
}\n`;
    const { port } = await startProxy(config({ up: [a.address, b.address] }), { 'balancer.ts': script });
    for (const shard of ['b', 'a', 'b', 'b', 'a']) {
      const res = await request(port, { headers: { 'x-shard': shard } });
      expect(res.headers['x-origin']).toBe(shard);
    }
  });

  it('is called again after a failed try, with the failure reason, and picks another target', async () => {
    const dead = await closedPort();
    const good = await startOrigin(undefined, 'good');
    const script = `export default function balancer(ctx: any) {
  const b = ctx.balancer;
  if (b.tries === 0) return b.pick(b.targets[0].address);
  // Only a correct failure report leads to the good target.
  if (b.failure && b.failure.code === 'PRX_ERR_UPSTREAM_CONNECT' && b.failure.address === b.targets[0].address) b.pick(b.targets[1].address);
  else b.pick(b.targets[0].address);
}\n`;
    const { port } = await startProxy(config({ up: [dead, good.address] }), { 'balancer.ts': script });
    const res = await request(port);
    expect(res.status).toBe(200);
    expect(res.headers['x-origin']).toBe('good');
  });

  it('a script that keeps picking a failing target is still bounded by retries (502)', async () => {
    const dead = await closedPort();
    const good = await startOrigin(undefined, 'good');
    const script = `export default function balancer(ctx: any) { ctx.balancer.pick(ctx.balancer.targets[0].address); }\n`;
    const { port } = await startProxy(config({ up: [dead, good.address] }, '    retries: 3\n'), { 'balancer.ts': script });
    expect((await request(port)).status).toBe(502);
    expect(good.seen).toHaveLength(0);
  });

  it('may send the try to another configured upstream', async () => {
    const a = await startOrigin(undefined, 'a');
    const other = await startOrigin(undefined, 'other');
    const script = `export default function balancer(ctx: any) {
  if (ctx.request.path.startsWith('/other/')) ctx.balancer.pick('${other.address}', 'second');
}\n`;
    const { port } = await startProxy(config({ first: [a.address], second: [other.address] }), { 'balancer.ts': script });
    expect((await request(port, { path: '/other/x' })).headers['x-origin']).toBe('other');
    expect((await request(port, { path: '/x' })).headers['x-origin']).toBe('a');
  });

  it('sets the consistent-hash key; leaving everything alone keeps the algorithm', async () => {
    const os = await Promise.all(['a', 'b', 'c'].map((n) => startOrigin(undefined, n)));
    const script = `export default function balancer(ctx: any) {
  const q = ctx.request.query;
  if (q.startsWith('user=')) ctx.balancer.hashKey = q.slice(5);
}\n`;
    const { port } = await startProxy(config({ up: os.map((o) => o.address) }, '    balance: consistent_hash\n    hash_key: header:x-none\n'), { 'balancer.ts': script });
    const owner = new Map<string, string>();
    for (let round = 0; round < 2; round++) {
      for (let u = 0; u < 30; u++) {
        const got = (await request(port, { path: `/p?user=u${u}` })).headers['x-origin'] as string;
        if (round === 0) owner.set(`u${u}`, got);
        else expect(got).toBe(owner.get(`u${u}`));
      }
    }
    expect(new Set(owner.values()).size).toBe(3);
  });

  it('a pick that is not a target fails the request with 500', async () => {
    const a = await startOrigin(undefined, 'a');
    const { port } = await startProxy(config({ up: [a.address] }), { 'balancer.ts': `export default function balancer(ctx: any) { ctx.balancer.pick('10.9.9.9:1'); }\n` });
    expect((await request(port)).status).toBe(500);
    expect(a.seen).toHaveLength(0);
  });

  it('ctx.balancer is forbidden outside the balancer phase', async () => {
    const a = await startOrigin(undefined, 'a');
    const yaml = config({ up: [a.address] }).replace('    balancer_by_script: balancer.ts\n', '    access_by_script: access.ts\n');
    const { port } = await startProxy(yaml, { 'access.ts': `export default function access(ctx: any) { ctx.balancer.pick('x:1'); }\n` });
    expect((await request(port)).status).toBe(500);
  });
});
