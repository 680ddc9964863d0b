/**
 * Micro-benchmark (not a test): CPU per request of the five sandboxed phases through ScriptHost,
 * with the benchmark's five tasks (scripts/bench/phases: strip /api, x-block check, add a header,
 * uppercase the body, count in a shared dict). Log flushes are batched every 16 requests, about
 * what setImmediate batching gives under load.
 *
 *   node --no-node-snapshot --import tsx test/unit/phases/measure-phase-cost.ts
 */
import { rmSync } from 'node:fs';
import pino from 'pino';
import { loadConfig } from '../../../src/config/load.ts';
import { createScriptHost, type ScriptHostImpl } from '../../../src/phases/script-host.ts';
import { config, request, SUMMARY, writeTree } from './fixture.ts';

const dir = writeTree({
  // cpu_ms is generous: the timeout is wall-clock, and a loaded machine must not abort the measurement.
  'scriptgate.yaml': config(
    `  - name: api
    rewrite_by_script: rewrite.ts
    access_by_script: access.ts
    header_filter_by_script: header_filter.ts
    body_filter_by_script: body_filter.ts
    log_by_script: log.ts
`,
    'tenants:\n  default: { cpu_ms: 2000, scripts: . }\n',
  ),
  'rewrite.ts': 'export default function (ctx: any) { ctx.request.path = ctx.request.path.slice(4); }',
  'access.ts': 'export default function (ctx: any) { if (ctx.request.headers.has("x-block")) return ctx.exit(403); }',
  'header_filter.ts': 'export default function (ctx: any) { ctx.response.headers.set("x-proxy", "scriptgate"); }',
  'body_filter.ts': 'export default function (ctx: any, chunk: string) { return chunk.toUpperCase(); }',
  'log.ts': 'export default function (ctx: any) { ctx.shared("stats").incr("requests", 1, 0); }',
});
const host = (await createScriptHost(await loadConfig(`${dir}/scriptgate.yaml`), pino({ level: 'silent' }))) as ScriptHostImpl;
const rs = host.route(0)!;
const logger = pino({ level: 'silent' });
const req = request({
  path: '/api/small',
  headers: ['host', 'shop.example.com', 'user-agent', 'Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0', 'accept', 'application/json', 'accept-encoding', 'gzip, br', 'accept-language', 'en-US', 'authorization', 'Bearer eyJhbGciOiJIUzI1NiJ9.abc', 'x-request-id', '8f14e45f-ceea-467f', 'x-forwarded-for', '203.0.113.7'],
});
const head = { status: 200, headers: ['content-type', 'application/json', 'content-length', '512', 'server', 'upstream/1.2', 'etag', '"abc"', 'date', 'Tue, 01 Jul 2025 10:00:00 GMT'] };
const body = Buffer.from('x'.repeat(512));
const empty = Buffer.alloc(0);

function one(phases: 'all' | 'request'): void {
  const s = rs.open(req, logger);
  s.requestPhases(req);
  if (phases === 'all') {
    s.headerFilter(head);
    s.bodyFilter(body, false);
    s.bodyFilter(empty, true);
    s.log(SUMMARY);
  }
  s.close();
}

function measure(label: string, phases: 'all' | 'request', n: number): number {
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    one(phases);
    if ((i & 15) === 15) host.flush();
  }
  host.flush();
  const c = process.cpuUsage(c0);
  const us = (c.user + c.system) / n;
  console.log(`${label.padEnd(52)} ${us.toFixed(1)} µs CPU/request`);
  return us;
}

for (let i = 0; i < 5000; i++) one('all');
host.flush();
const ref = { method: req.method, path: req.path, headers: req.headers };
const r0 = process.cpuUsage();
for (let i = 0; i < 200_000; i++) JSON.stringify(ref);
const rc = process.cpuUsage(r0);
const refUs = (rc.user + rc.system) / 200_000;
console.log(`REF (host JSON.stringify of the request, machine-speed gauge): ${refUs.toFixed(2)} µs`);
const runs: number[] = [];
for (let r = 0; r < 3; r++) {
  measure('rewrite+access only (1 crossing)', 'request', 20_000);
  runs.push(measure('five phases (4 crossings + 1/16 flush)', 'all', 20_000));
}
runs.sort((a, b) => a - b);
console.log(`median five phases: ${runs[1]!.toFixed(1)} µs CPU/request (${(runs[1]! / refUs).toFixed(1)} xREF); tenant CPU ${(Number(host.stats()[0]!.cpuNs) / 1e6).toFixed(0)} ms in ${host.stats()[0]!.calls} calls`);
host.dispose();
rmSync(dir, { recursive: true, force: true });
