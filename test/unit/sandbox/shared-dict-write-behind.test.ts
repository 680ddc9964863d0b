/**
 * Write-behind of `incr` during a log batch (bootstrap/shared-dict.ts): through real isolates and
 * the real LMDB store. The log phases of one batch see the same values as when every incr went to
 * the host (sequential, distinct), other operations in the batch see the counts made before them,
 * a key is created by the host with its init and TTL, and a batch cut off by cpu_ms keeps the
 * counts of the requests that ran before it (as the one write transaction per batch always did).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouteScriptsImpl } from '../../../src/phases/route-scripts.ts';
import { config, exitJson, fixture, request, SUMMARY, type Fixture } from '../phases/fixture.ts';

// The log phase runs what the path asks for and logs what each step returned.
const LOG = `export default function log(ctx: any) {
  const d = ctx.shared('d');
  const steps = ctx.request.path.slice(1).split('/');
  const out: unknown[] = [];
  for (const s of steps) {
    const [op, key, arg] = s.split(':');
    if (op === 'spin') for (;;) {}
    if (op === 'incr') out.push(d.incr(key, Number(arg), 0));
    else if (op === 'incrnew') out.push(d.incr(key, 1, 100, 60));
    else if (op === 'incrnoinit') out.push(d.incr(key, 1));
    else if (op === 'get') out.push(d.get(key));
    else if (op === 'set') out.push(d.set(key, arg));
  }
  ctx.log.info('steps', { out });
}
`;
const READ = `export default function access(ctx: any) {
  ctx.exit(200, { body: JSON.stringify(ctx.shared('d').get(ctx.request.path.slice(1)) ?? null) });
}
`;
const PLAIN = `export default function access(ctx: any) {
  ctx.exit(204);
}
`;

let f: Fixture;
beforeAll(async () => {
  f = await fixture({
    'scriptgate.yaml': config(
      `  - name: log\n    match: { path_prefix: /l }\n    log_by_script: log.ts\n  - name: read\n    match: { path_prefix: /r }\n    access_by_script: read.ts\n  - name: plain\n    match: { path_prefix: /p }\n    access_by_script: plain.ts\n`,
      'tenants:\n  default: { cpu_ms: 200, cpu_budget_ms_per_s: 100000, scripts: . }\nshared_dicts:\n  d: { capacity: 100 }\n',
    ),
    'log.ts': LOG,
    'read.ts': READ,
    'plain.ts': PLAIN,
  });
});
afterAll(() => f.cleanup());

/** Queues one log phase per path (one batch until flush). */
function logs(...paths: string[]): void {
  for (const p of paths) {
    const req = request({ path: p });
    const s = f.host.route(0)!.open(req, f.logger);
    s.log(SUMMARY);
    s.close();
  }
}

function read(key: string): unknown {
  return exitJson(f, 1, request({ path: `/${key}` }));
}

/** Log records of the tenant still waiting for their batch. */
function pendingLogs(): number {
  return (f.host.route(0) as RouteScriptsImpl).batch.pending;
}

function outs(n: number): unknown[][] {
  return f.logs
    .filter((l) => l.msg === 'steps')
    .slice(-n)
    .map((l) => l.out as unknown[]);
}

describe('incr write-behind in a log batch', () => {
  it('counts like the host would: each log phase sees the next value, the store holds the total', () => {
    f.host.flush();
    logs('/incr:c:1'); // creates the key (host), then counted in the isolate
    f.host.flush();
    expect(read('c')).toBe(1);
    logs(...Array.from({ length: 40 }, () => '/incr:c:1'), '/incr:c:2.5', '/incr:c:-0.5');
    f.host.flush();
    const seen = outs(42).map((o) => o[0]);
    expect(seen.slice(0, 40)).toEqual(Array.from({ length: 40 }, (_, i) => i + 2));
    expect(seen.slice(40)).toEqual([43.5, 43]);
    expect(read('c')).toBe(43);
  });

  it('other operations in the same batch see the counts made before them', () => {
    logs('/incr:g:1', '/incr:g:1/get:g', '/incr:g:5/set:h:x/incr:g:1/get:g', '/get:g');
    f.host.flush();
    expect(outs(4)).toEqual([[1], [2, 2], [7, true, 8, 8], [8]]);
    expect(read('g')).toBe(8);
    expect(read('h')).toBe('x');
  });

  it('a key absent at its first incr is created by the host with init (and TTL); without init it stays absent', () => {
    logs('/incrnew:n', '/incrnew:n', '/incrnoinit:m', '/incrnoinit:m');
    f.host.flush();
    expect(outs(4)).toEqual([[101], [102], [null], [null]]);
    expect(read('n')).toBe(102);
    expect(read('m')).toBeNull();
  });

  it('a batch cut off by cpu_ms keeps the counts of the log phases that ran before the spin', () => {
    logs('/incr:t:1');
    f.host.flush();
    logs('/incr:t:1', '/incr:t:1', '/incr:t:1/spin', '/incr:t:1');
    f.host.flush();
    expect(f.logs.some((l) => l.msg === 'log phase batch failed; request state freed')).toBe(true);
    // 1 before, then 2 and 3 finished, and the spinning phase had counted 4 before it was stopped.
    expect(read('t')).toBe(4);
    // The isolate is still used afterwards, and counts on from the stored value.
    logs('/incr:t:10');
    f.host.flush();
    expect(outs(1)).toEqual([[14]]);
    expect(read('t')).toBe(14);
  });
});

describe('deferred log phases and later requests', () => {
  it('a route whose scripts use shared dicts sees the writes of log phases still waiting in the batch', () => {
    f.host.flush();
    logs('/incr:o:1', '/incr:o:1', '/incr:o:1');
    expect(pendingLogs()).toBe(3);
    expect(read('o')).toBe(3);
  });

  it('a route whose scripts never mention shared dicts leaves the batch to its timer', () => {
    f.host.flush();
    logs('/incr:q:1');
    const req = request({ path: '/p' });
    const s = f.host.route(2)!.open(req, f.logger);
    expect(s.requestPhases(req)).toMatchObject({ action: 'exit', status: 204 });
    expect(pendingLogs()).toBe(1);
    s.close();
    f.host.flush();
    expect(read('q')).toBe(1);
  });
});
