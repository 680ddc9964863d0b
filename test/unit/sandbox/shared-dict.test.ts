/**
 * ctx.shared semantics through real isolates and the real LMDB store: types kept, add only when
 * absent, incr with init and TTL (TTL only on creation), expiry, capacity (expired dropped, then
 * refused), delete and size, tenant scoping, undeclared dicts, and the cost of one call.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isProxyError } from '../../../src/errors.ts';
import { config, exitJson, fixture, request, type Fixture } from '../phases/fixture.ts';

const OPS = `export default function access(ctx: any) {
  const [dict, ...args] = JSON.parse(decodeURIComponent(ctx.request.query));
  const d = ctx.shared(dict);
  const op = args.shift();
  let out;
  if (op === 'loop') { const t = Date.now(); for (let i = 0; i < args[1]; i++) args[0] === 'get' ? d.get('k') : d.incr('c', 1, 0); out = Date.now() - t; }
  else out = d[op](...args);
  ctx.exit(200, { body: JSON.stringify(out === undefined ? null : out) });
}
`;

let f: Fixture;
beforeAll(async () => {
  f = await fixture({
    'scriptgate.yaml': config(
      `  - name: a\n    tenant: a\n    match: { path_prefix: /a }\n    access_by_script: ops.ts\n  - name: b\n    tenant: b\n    match: { path_prefix: /b }\n    access_by_script: ops.ts\n`,
      'tenants:\n  a: { cpu_ms: 5000, cpu_budget_ms_per_s: 100000, scripts: a }\n  b: { cpu_ms: 5000, scripts: b }\nshared_dicts:\n  d: { capacity: 3 }\n  big: { capacity: 100000 }\n',
    ),
    'a/ops.ts': OPS,
    'b/ops.ts': OPS,
  });
});
afterAll(() => f.cleanup());

function op(route: number, ...args: unknown[]): unknown {
  return exitJson(f, route, request({ query: encodeURIComponent(JSON.stringify(args)) }));
}
const A = (...args: unknown[]) => op(0, 'd', ...args);

describe('ctx.shared', () => {
  // First on a fresh store: a lock taken and released (the write that frees the store's first page)
  // once aborted the whole process inside LMDB (useWritemap).
  it('a fresh store survives add then delete in separate requests (the lock pattern)', () => {
    expect(A('add', 'lock', true, 5)).toBe(true);
    A('delete', 'lock');
    expect(A('get', 'lock')).toBe(null);
    expect(A('set', 'k', 1)).toBe(true);
    A('delete', 'k');
    expect(A('get', 'k')).toBe(null);
  });

  it('keeps types; add only when absent; incr with init; delete; size', () => {
    expect(A('set', 's', 'text')).toBe(true);
    expect(A('get', 's')).toBe('text');
    expect(A('set', 'b', false)).toBe(true);
    expect(A('get', 'b')).toBe(false);
    expect(A('add', 's', 'other')).toBe(false);
    expect(A('incr', 'n', 2)).toBeNull();
    expect(A('incr', 'n', 2, 10)).toBe(12);
    expect(A('incr', 'n', -1, 10)).toBe(11);
    expect(A('size')).toBe(3);
    expect(A('delete', 's')).toBe(true);
    expect(A('get', 's')).toBeNull();
    expect(A('delete', 'b')).toBe(true);
    expect(A('delete', 'n')).toBe(true);
    expect(A('size')).toBe(0);
  });

  it('a key over 1024 bytes (UTF-8) is refused the same clear way by every method', () => {
    const long = 'é'.repeat(513); // 1026 bytes
    for (const args of [['get', long], ['set', long, 1], ['add', long, 1], ['incr', long, 1], ['incr', long, 1, 0], ['delete', long]]) {
      let msg = '';
      try {
        A(...args);
      } catch (err) {
        msg = isProxyError(err) ? err.message : String(err);
      }
      expect(msg, String(args[0])).toMatch(/shared dict key must be a non-empty string of at most 1024 bytes \(UTF-8\)/);
    }
    expect(A('set', 'k'.repeat(1024), 1)).toBe(true);
    expect(A('delete', 'k'.repeat(1024))).toBe(true);
  });

  it('expires keys after their TTL; incr keeps the expiry set at creation', async () => {
    expect(A('incr', 'w', 1, 0, 0.15)).toBe(1);
    expect(A('set', 'x', 1, 0.15)).toBe(true);
    expect(A('incr', 'w', 1, 0, 100)).toBe(2);
    await new Promise((r) => setTimeout(r, 200));
    expect(A('get', 'x')).toBeNull();
    expect(A('get', 'w')).toBeNull();
    expect(A('add', 'x', 'again')).toBe(true);
    expect(A('delete', 'x')).toBe(true);
  });

  it('a full dict drops expired keys, then refuses new keys but still updates existing ones', async () => {
    expect(A('set', 'e', 1, 0.05)).toBe(true);
    expect(A('set', 'k1', 1)).toBe(true);
    expect(A('set', 'k2', 2)).toBe(true);
    await new Promise((r) => setTimeout(r, 80));
    expect(A('set', 'k3', 3)).toBe(true); // 'e' expired and was dropped
    expect(A('set', 'k4', 4)).toBe(false);
    expect(A('add', 'k4', 4)).toBe(false);
    expect(A('incr', 'k4', 1, 0)).toBeNull();
    expect(A('set', 'k1', 10)).toBe(true);
    expect(A('get', 'k1')).toBe(10);
    for (const k of ['k1', 'k2', 'k3']) A('delete', k);
  });

  it('each tenant has its own instance of a dict; undeclared dicts and bad values fail clearly', () => {
    expect(A('set', 'mine', 'a')).toBe(true);
    expect(op(1, 'd', 'get', 'mine')).toBeNull();
    expect(() => op(0, 'nope', 'get', 'k')).toThrow(/no such dict.*shared_dicts/);
    expect(() => A('set', 'o', { a: 1 })).toThrow(/strings, finite numbers or booleans/);
    expect(() => A('incr', 'mine', 1)).toThrow(/not a number/);
    A('delete', 'mine');
  });

  it('costs a few µs per get and tens of µs per incr (printed)', () => {
    op(0, 'big', 'set', 'k', 'v');
    const n = 2000;
    op(0, 'big', 'loop', 'get', n); // warm
    op(0, 'big', 'loop', 'incr', n);
    op(0, 'big', 'delete', 'c');
    const get = Number(op(0, 'big', 'loop', 'get', n));
    const incr = Number(op(0, 'big', 'loop', 'incr', n));
    console.log(`ctx.shared: get ${((get * 1000) / n).toFixed(1)} µs/call, incr ${((incr * 1000) / n).toFixed(1)} µs/call (wall, inside one crossing)`);
    expect(op(0, 'big', 'get', 'c')).toBe(n);
    expect(isProxyError(new Error())).toBe(false);
  });
});
