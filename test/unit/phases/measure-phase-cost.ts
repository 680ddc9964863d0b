/**
 * Micro-benchmark (not a test): CPU per request of the sandboxed phases through ScriptHost, for
 * three script sets: no-op five phases, the benchmark's five tasks (scripts/bench/phases: strip
 * /api, x-block check, add a header, uppercase the body, count in a shared dict) and rewrite+access
 * only; each for the old call path (headerFilter + bodyFilter + an empty eof call: 4 crossings) and
 * the one-crossing response path (responseStart with eof on the only chunk: 2 crossings). Log
 * flushes are batched every 16 requests, about what setImmediate batching gives under load.
 *
 *   node --no-node-snapshot --import tsx test/unit/phases/measure-phase-cost.ts
 */
import { rmSync } from 'node:fs';
import pino from 'pino';
import { loadConfig } from '../../../src/config/load.ts';
import { createScriptHost, type ScriptHostImpl } from '../../../src/phases/script-host.ts';
import type { RouteScripts } from '../../../src/phases/contract.ts';
import { config, request, SUMMARY, writeTree } from './fixture.ts';

const five = (prefix: string) => `    rewrite_by_script: ${prefix}rewrite.ts
    access_by_script: ${prefix}access.ts
    header_filter_by_script: ${prefix}header_filter.ts
    body_filter_by_script: ${prefix}body_filter.ts
    log_by_script: ${prefix}log.ts
`;
const dir = writeTree({
  // cpu_ms is generous: the timeout is wall-clock, and a loaded machine must not abort the measurement.
  'scriptgate.yaml': config(
    `  - name: bench\n    match: { path_prefix: /a }\n${five('')}  - name: noop\n    match: { path_prefix: /b }\n${five('noop/')}  - name: req\n    match: { path_prefix: /c }\n    rewrite_by_script: rewrite.ts\n    access_by_script: access.ts\n`,
    'tenants:\n  default: { cpu_ms: 2000, cpu_budget_ms_per_s: 1000000, scripts: . }\nshared_dicts:\n  stats: { capacity: 1000 }\n',
  ),
  'rewrite.ts': 'export default function (ctx: any) { ctx.request.path = ctx.request.path.slice(4); }',
  'access.ts': 'export default function (ctx: any) { if (ctx.request.headers.has("x-block")) return ctx.exit(403); }',
  'header_filter.ts': 'export default function (ctx: any) { ctx.response.headers.set("x-proxy", "scriptgate"); }',
  'body_filter.ts': 'export default function (ctx: any, chunk: string) { return chunk.toUpperCase(); }',
  'log.ts': 'export default function (ctx: any) { ctx.shared("stats").incr("requests", 1, 0); }',
  ...Object.fromEntries(['rewrite', 'access', 'header_filter', 'body_filter', 'log'].map((p) => [`noop/${p}.ts`, 'export default function () {}'])),
});
const host = (await createScriptHost(await loadConfig(`${dir}/scriptgate.yaml`), pino({ level: 'silent' }))) as ScriptHostImpl;
const logger = pino({ level: 'silent' });
const req = request({
  path: '/api/small',
  headers: ['host', 'shop.example.com', 'user-agent', 'Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0', 'accept', 'application/json', 'accept-encoding', 'gzip, br', 'accept-language', 'en-US', 'authorization', 'Bearer eyJhbGciOiJIUzI1NiJ9.abc', 'x-request-id', '8f14e45f-ceea-467f', 'x-forwarded-for', '203.0.113.7'],
});
const head = { status: 200, headers: ['content-type', 'application/json', 'content-length', '512', 'server', 'upstream/1.2', 'etag', '"abc"', 'date', 'Tue, 01 Jul 2025 10:00:00 GMT'] };
const body = Buffer.from('x'.repeat(512));
const empty = Buffer.alloc(0);

type Path = 'old' | 'one' | 'request';
function one(rs: RouteScripts, mode: Path): void {
  const s = rs.open(req, logger);
  s.requestPhases(req);
  if (mode === 'old') {
    s.headerFilter(head);
    s.bodyFilter(body, false);
    s.bodyFilter(empty, true);
  } else if (mode === 'one') {
    s.responseStart!(head, body, true);
  }
  if (mode !== 'request') s.log(SUMMARY);
  s.close();
}

function measure(rs: RouteScripts, mode: Path, n: number): number {
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    one(rs, mode);
    if ((i & 15) === 15) host.flush();
  }
  host.flush();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / n;
}

const variants: Array<[string, RouteScripts, Path]> = [
  ['no-op five phases, old path (4 crossings)', host.route(1)!, 'old'],
  ['no-op five phases, responseStart (2 crossings)', host.route(1)!, 'one'],
  ['bench five tasks, old path (4 crossings)', host.route(0)!, 'old'],
  ['bench five tasks, responseStart (2 crossings)', host.route(0)!, 'one'],
  ['rewrite+access only (1 crossing)', host.route(2)!, 'request'],
];
for (const [, rs, mode] of variants) for (let i = 0; i < 3000; i++) one(rs, mode);
host.flush();
const ref = { method: req.method, path: req.path, headers: req.headers };
const results = variants.map(() => [] as number[]);
const refs: number[] = [];
for (let r = 0; r < 5; r++) {
  const r0 = process.cpuUsage();
  for (let i = 0; i < 100_000; i++) JSON.stringify(ref);
  const rc = process.cpuUsage(r0);
  refs.push((rc.user + rc.system) / 100_000);
  variants.forEach(([, rs, mode], i) => results[i]!.push(measure(rs, mode, 6000)));
}
const med = (a: number[]) => a.slice().sort((x, y) => x - y)[a.length >> 1]!;
console.log(`REF (host JSON.stringify of the request, machine-speed gauge): ${med(refs).toFixed(2)} µs`);
variants.forEach(([label], i) => console.log(`${label.padEnd(52)} ${med(results[i]!).toFixed(1)} µs CPU/request (runs ${results[i]!.map((x) => x.toFixed(0)).join('/')})`));
host.dispose();
rmSync(dir, { recursive: true, force: true });
