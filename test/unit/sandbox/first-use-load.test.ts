/**
 * A timeout that cuts off a built-in's first-use load (core-js's URL group, the hashes) must fail
 * only its own request: the isolate is rebuilt, so the tenant's next requests have working
 * `URL`/`URLSearchParams`/`atob` and `ctx.crypto` (before, they read as undefined or "unsupported
 * hash" until the next reload).
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { isProxyError } from '../../../src/errors.ts';
import { config, exitJson, fixture, request, type Fixture } from '../phases/fixture.ts';

// cpu_ms 100: the wall-clock backstop stops a call at 200 ms. A script spins until just before it
// and only then touches a built-in for the first time, whose load (10-20 ms) is cut off.
const FILES = {
  'scriptgate.yaml': config('  - name: t\n    access_by_script: access.ts\n', 'tenants:\n  default: { cpu_ms: 100, cpu_budget_ms_per_s: 100000, scripts: . }\n'),
  // The built-ins are reached by computed names, so the isolate does not preload them at build
  // (tenant-sandbox.ts builtinsNamed) and their first load lands in a request.
  'access.ts': `export default function access(ctx: any) {
  const g = globalThis as any;
  const name = (s: string) => s.split("").reverse().join(""); // computed at run time: esbuild folds "U" + "RL"
  const U = name("LRU"), Q = U + name("smaraPhcraeS"), A = name("bota"), C = name("otpyrc");
  const spin = (ms: number) => { const end = Date.now() + ms; while (Date.now() < end) {} };
  switch (ctx.request.path) {
    case "/cut-url": spin(198); new g[Q]("a=1"); break;
    case "/cut-hash": spin(199.5); ctx[C].createHmac("sha256", "k"); break;
    case "/use": ctx.exit(200, { body: JSON.stringify({
      q: new g[Q]("a=1&b=2").get("b"),
      p: new g[U]("http://x.test/p?q").pathname,
      a: g[A]("YQ=="),
      h: ctx[C].createHmac("sha256", "k").update("x").digest("hex").slice(0, 8),
    }) });
  }
}
`,
};

function timesOut(f: Fixture, path: string): void {
  const req = request({ path });
  const s = f.host.route(0)!.open(req, f.logger);
  try {
    s.requestPhases(req);
    throw new Error(`${path} did not time out`);
  } catch (err) {
    if (!isProxyError(err)) throw err;
    expect(err.code).toBe('PRX_ERR_SCRIPT_TIMEOUT');
  } finally {
    s.close();
  }
}

const WORKING = { q: '2', p: '/p', a: 'a', h: 'c38edc88' };

/** A fresh tenant isolate per test: nothing loaded yet. */
async function fresh(): Promise<Fixture> {
  const f = await fixture(FILES);
  onTestFinished(() => f.cleanup());
  return f;
}

describe('a timeout during a built-in first-use load', () => {
  it('URL group: the next request of the tenant has working URL, URLSearchParams, atob', async () => {
    const f = await fresh();
    timesOut(f, '/cut-url');
    expect(exitJson(f, 0, request({ path: '/use' }))).toEqual(WORKING);
  });

  it('hashes: the next request of the tenant has a working ctx.crypto.createHmac', async () => {
    const f = await fresh();
    timesOut(f, '/cut-hash');
    expect(exitJson(f, 0, request({ path: '/use' }))).toEqual(WORKING);
  });
});

describe('built-ins a tenant names are loaded when its isolate is built', () => {
  it('a tenant whose scripts name URL and ctx.crypto has them loaded before its first request (its heap is larger than one that names neither)', async () => {
    const f = await fixture({
      'scriptgate.yaml': config(
        '  - name: a\n    tenant: uses\n    access_by_script: a.ts\n  - name: b\n    tenant: plain\n    access_by_script: b.ts\n',
        'tenants:\n  uses: { cpu_ms: 100, scripts: uses }\n  plain: { cpu_ms: 100, scripts: plain }\n',
      ),
      'uses/a.ts': 'export default function (ctx: any) { if (ctx.request.path === "/x") ctx.exit(200, { body: new URL("http://a/b").pathname + ctx.crypto.createHash("sha256").update("x").digest("hex") }); }',
      'plain/b.ts': 'export default function (ctx: any) { ctx.vars.n = 1; }',
    });
    onTestFinished(() => f.cleanup());
    const heap = (route: number) => (f.host.route(route) as unknown as { sandbox: { heapStatistics(): { used_heap_size: number } } }).sandbox.heapStatistics().used_heap_size;
    expect(heap(0) - heap(1)).toBeGreaterThan(300_000);
  });
});
