import { describe, expect, it } from 'vitest';
import { request, startOrigin, startProxy, type Origin } from '../helpers/servers.ts';

function routingConfig(o: Record<string, Origin>): string {
  return `listen:
  - address: 127.0.0.1:0
log: { level: silent }
upstreams:
${Object.entries(o).map(([n, origin]) => `  ${n}: { targets: ["${origin.address}"] }`).join('\n')}
routes:
  - name: exact
    match: { host: api.example.com }
    upstream: exact
  - name: exact-v2
    match: { host: api.example.com, path_prefix: /v2/ }
    upstream: exactv2
  - name: wild
    match: { host: "*.example.com" }
    upstream: wild
  - name: any-short
    match: { path_prefix: /a/ }
    upstream: short
  - name: any-long
    match: { path_prefix: /a/b/ }
    upstream: long
  - name: post-only
    match: { path_prefix: /m/, methods: [POST, PUT] }
    upstream: post
`;
}

async function setup() {
  const names = ['exact', 'exactv2', 'wild', 'short', 'long', 'post'] as const;
  const origins = {} as Record<(typeof names)[number], Origin>;
  for (const n of names) origins[n] = await startOrigin(undefined, n);
  const { port } = await startProxy(routingConfig(origins));
  const total = () => names.reduce((s, n) => s + origins[n].seen.length, 0);
  return { port, origins, total };
}

describe('routing', () => {
  it('an exact host wins over a *.suffix host, and the port of Host is ignored', async () => {
    const { port } = await setup();
    expect((await request(port, { host: 'api.example.com', path: '/x' })).text).toBe('origin:exact GET /x');
    expect((await request(port, { host: 'API.example.com:8080', path: '/x' })).text).toBe('origin:exact GET /x');
  });

  it('a *.suffix host matches subdomains but not the bare suffix', async () => {
    const { port, origins } = await setup();
    expect((await request(port, { host: 'www.example.com', path: '/x' })).text).toBe('origin:wild GET /x');
    expect((await request(port, { host: 'a.b.example.com', path: '/y' })).text).toBe('origin:wild GET /y');
    const bare = await request(port, { host: 'example.com', path: '/x' });
    expect(bare.status).toBe(404);
    expect(origins.wild.seen.map((s) => s.url)).toEqual(['/x', '/y']);
  });

  it('routes without a host match any host', async () => {
    const { port } = await setup();
    expect((await request(port, { host: 'other.test', path: '/a/z' })).text).toBe('origin:short GET /a/z');
  });

  it('the longest path_prefix wins within a host', async () => {
    const { port } = await setup();
    expect((await request(port, { host: 'other.test', path: '/a/b/c' })).text).toBe('origin:long GET /a/b/c');
    expect((await request(port, { host: 'other.test', path: '/a/bc' })).text).toBe('origin:short GET /a/bc');
    expect((await request(port, { host: 'api.example.com', path: '/v2/users' })).text).toBe('origin:exactv2 GET /v2/users');
    expect((await request(port, { host: 'api.example.com', path: '/v1/users' })).text).toBe('origin:exact GET /v1/users');
  });

  it('methods restrict a route; another method falls through to 404', async () => {
    const { port, origins } = await setup();
    expect((await request(port, { host: 'x.test', path: '/m/1', method: 'POST', body: 'hi' })).text).toBe('origin:post POST /m/1');
    expect((await request(port, { host: 'x.test', path: '/m/1', method: 'PUT', body: 'hi' })).text).toBe('origin:post PUT /m/1');
    const get = await request(port, { host: 'x.test', path: '/m/1' });
    expect(get.status).toBe(404);
    expect(origins.post.seen).toHaveLength(2);
  });

  it('no matching route gives 404 and no origin sees the request', async () => {
    const { port, total } = await setup();
    const res = await request(port, { host: 'nowhere.test', path: '/zzz' });
    expect(res.status).toBe(404);
    const post = await request(port, { host: 'nowhere.test', path: '/zzz', method: 'POST', body: 'payload' });
    expect(post.status).toBe(404);
    expect(total()).toBe(0);
  });
});
