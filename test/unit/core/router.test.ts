import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.ts';
import { hostName, Router } from '../../../src/core/router.ts';

function router(routes: string): Router {
  const { config } = parseConfig(`listen:\n  - address: 127.0.0.1:0\nupstreams:\n  u: { targets: ["127.0.0.1:1"] }\nroutes:\n${routes}`, 'r.yaml');
  return new Router(config.routes);
}

describe('hostName', () => {
  it('lower-cases, strips the port and a trailing dot, keeps IPv6 brackets', () => {
    expect(hostName('API.Example.com:8080')).toBe('api.example.com');
    expect(hostName('example.com.')).toBe('example.com');
    expect(hostName('[::1]:6188')).toBe('[::1]');
    expect(hostName('')).toBe('');
  });
});

describe('Router', () => {
  const r = router(`  - { name: any, upstream: u }
  - { name: exact, match: { host: a.example.com }, upstream: u }
  - { name: exact-api, match: { host: a.example.com, path_prefix: /api/ }, upstream: u }
  - { name: wild, match: { host: "*.example.com" }, upstream: u }
  - { name: deeper, match: { host: "*.b.example.com" }, upstream: u }
  - { name: list, match: { host: [x.test, y.test], path_prefix: /l/ }, upstream: u }
  - { name: posts, match: { path_prefix: /p/, methods: [POST] }, upstream: u }
  - { name: first, match: { path_prefix: /dup/ }, upstream: u }
  - { name: second, match: { path_prefix: /dup/ }, upstream: u }
`);
  const name = (host: string, path: string, method = 'GET') => r.match(host, path, method)?.name;

  it('exact host beats wildcard beats any', () => {
    expect(name('a.example.com', '/')).toBe('exact');
    expect(name('c.example.com', '/')).toBe('wild');
    expect(name('other.test', '/')).toBe('any');
  });

  it('the longest wildcard suffix wins; the bare suffix does not match *.suffix', () => {
    expect(name('c.b.example.com', '/')).toBe('deeper');
    expect(name('example.com', '/')).toBe('any');
  });

  it('longest prefix within a host; falls back to a less specific host when no prefix matches', () => {
    expect(name('a.example.com', '/api/x')).toBe('exact-api');
    expect(name('x.test', '/l/1')).toBe('list');
    expect(name('y.test', '/l/1')).toBe('list');
    expect(name('y.test', '/m')).toBe('any');
  });

  it('methods filter; the first route of equal prefixes wins', () => {
    expect(name('h', '/p/1', 'POST')).toBe('posts');
    expect(name('h', '/p/1', 'GET')).toBe('any');
    expect(name('h', '/dup/1')).toBe('first');
  });

  it('no route → undefined', () => {
    const only = router('  - { match: { host: only.test, path_prefix: /x/ }, upstream: u }\n');
    expect(only.match('only.test', '/y', 'GET')).toBeUndefined();
    expect(only.match('other.test', '/x/', 'GET')).toBeUndefined();
  });
});
