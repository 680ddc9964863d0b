/**
 * ctx.shared across cluster workers: `scriptgate start` with `workers: 2`, a script that increments
 * one key per request, 10,000 requests over 16 keep-alive connections. Both workers must serve (seen
 * in the access log's pids), every increment returns a distinct value 1..10000 (atomic across
 * processes), and the key ends at exactly 10,000.
 */
import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { startOrigin, writeConfig } from '../helpers/servers.ts';
import { freePort, spawnCli } from '../helpers/spawn-cli.ts';

const COUNT = `export default function access(ctx) {
  const d = ctx.shared('hits');
  if (ctx.request.path === '/get') return ctx.exit(200, { body: String(d.get('n')) });
  const n = d.incr('n', 1, 0);
  ctx.exit(200, { body: String(n) });
}
`;

function get(agent: http.Agent, port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`status ${res.statusCode}: ${body}`))));
      })
      .on('error', reject);
  });
}

describe('shared dicts in a cluster', { timeout: 180_000 }, () => {
  it('two workers incrementing one key 10,000 times in total end at exactly 10,000', async () => {
    const origin = await startOrigin();
    const port = await freePort();
    const file = writeConfig(
      `workers: 2
listen:
  - address: 127.0.0.1:${port}
reload: { watch: false }
upstreams:
  up: { targets: ["${origin.address}"] }
tenants:
  acme: { cpu_ms: 2000, cpu_budget_ms_per_s: 100000 }
shared_dicts:
  hits: { capacity: 100 }
routes:
  - name: count
    tenant: acme
    upstream: up
    access_by_script: count.js
`,
      { 'count.js': COUNT },
    );
    const c = spawnCli(file);
    await c.waitFor((ls) => ls.some((l) => l.msg === 'all workers listening'));
    const TOTAL = 10_000;
    const CONNS = 16;
    let next = 0;
    const seen: number[] = [];
    await Promise.all(
      Array.from({ length: CONNS }, async () => {
        // One keep-alive connection per lane; the kernel spreads the connections over the workers.
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        try {
          while (next < TOTAL) {
            next++;
            seen.push(Number(await get(agent, port, '/inc')));
          }
        } finally {
          agent.destroy();
        }
      }),
    );
    expect(seen).toHaveLength(TOTAL);
    const distinct = new Set(seen);
    expect(distinct.size).toBe(TOTAL);
    expect(Math.min(...seen)).toBe(1);
    expect(Math.max(...seen)).toBe(TOTAL);
    const agent = new http.Agent({ keepAlive: false });
    expect(await get(agent, port, '/get')).toBe(String(TOTAL));
    await c.waitFor((ls) => ls.filter((l) => l.msg === 'access').length >= TOTAL + 1);
    const pids = new Set(c.lines().filter((l) => l.msg === 'access').map((l) => l.pid));
    expect(pids.size).toBe(2);
  });
});
