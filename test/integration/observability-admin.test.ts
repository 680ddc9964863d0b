/**
 * The admin API of a single process: token check, /status (tenants, upstreams), /status/errors
 * after a failing script, /metrics with active connections by protocol and phase durations.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { ProxyServer } from '../../src/control/proxy-server.ts';
import { startAdmin } from '../../src/control/admin.ts';
import { statusDocument } from '../../src/control/status.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { errorReport } from '../../src/observability/error-report.ts';
import { metricsContentType, metricsText } from '../../src/observability/metrics.ts';
import { closeServer, request, startOrigin, writeConfig } from '../helpers/servers.ts';
import { parsePrometheusText, samples, sumOf } from '../helpers/prom-text.ts';
import { freePort, runCli } from '../helpers/spawn-cli.ts';

function get(port: number, path: string, headers: http.OutgoingHttpHeaders = {}, agent?: http.Agent): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, headers, agent: agent ?? false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
      })
      .on('error', reject);
  });
}

describe('admin API (single process)', () => {
  it('token, /status, /status/errors, /metrics with connections and phase times', async () => {
    const origin = await startOrigin();
    const file = writeConfig(
      `listen:
  - address: 127.0.0.1:0
admin: { address: 127.0.0.1:0, token: t0ken }
tenants:
  shop: { cpu_ms: 2000, log_level: fatal }
upstreams:
  up: { targets: ["${origin.address}"] }
routes:
  - name: shop
    tenant: shop
    upstream: up
    rewrite_by_script: r.ts
`,
      { 'r.ts': `export default function rewrite(ctx) {\n  if (ctx.request.path === '/fail') throw new Error('nope');\n}\n` },
    );
    const loaded = parseConfig(readFileSync(file, 'utf8'), file);
    const logger = createLogger('silent');
    const server = await ProxyServer.start(loaded, logger);
    onTestFinished(() => server.shutdown(false));
    const admin = await startAdmin({
      address: loaded.config.admin!.address,
      token: () => loaded.config.admin!.token,
      logger,
      reload: async () => ({ ok: true }) as never,
      metrics: () => metricsText(false),
      metricsContentType,
      status: () => statusDocument(loaded, server, undefined),
      errors: () => errorReport(),
    });
    onTestFinished(() => closeServer(admin));
    const aport = (admin.address() as AddressInfo).port;
    const port = server.ports[0]!;
    const auth = { authorization: 'Bearer t0ken' };

    const refused = await get(aport, '/status');
    expect(refused.status).toBe(401);
    expect(refused.headers['www-authenticate']).toMatch(/^Bearer /);
    expect((await get(aport, '/status', { authorization: 'Bearer wrong' })).status).toBe(401);

    for (let i = 0; i < 3; i++) expect((await request(port, { path: '/fail' })).status).toBe(500);
    expect((await request(port, { path: '/ok' })).status).toBe(200);

    // One kept-alive client connection stays open while metrics are scraped.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    onTestFinished(() => agent.destroy());
    expect((await get(port, '/held', {}, agent)).status).toBe(200);

    const m = parsePrometheusText((await get(aport, '/metrics', auth)).body);
    expect(sumOf(m, 'scriptgate_active_connections', { protocol: 'http1' })).toBe(1);
    expect(sumOf(m, 'scriptgate_phase_duration_seconds_count', { tenant: 'shop', phase: 'rewrite' })).toBe(5);
    expect(sumOf(m, 'scriptgate_requests_total', { route: 'shop', status_class: '5xx' })).toBe(3);
    expect(sumOf(m, 'scriptgate_requests_total', { route: 'shop', status_class: '2xx' })).toBe(2);
    // Both reload series exist before any reload (increase() sees the first one).
    expect(samples(m, 'scriptgate_reloads_total').map((x) => [x.labels.result, x.value]).sort()).toEqual([['failure', 0], ['success', 0]]);

    const status = JSON.parse((await get(aport, '/status', auth)).body) as { workers: number; tenants: Array<{ name: string; logLevel?: string; routes: string[]; isolate?: { alive: boolean } }>; upstreams: Array<{ name: string }> };
    expect(status.workers).toBe(1);
    expect(status.tenants).toEqual([expect.objectContaining({ name: 'shop', logLevel: 'fatal', routes: ['shop'], isolate: expect.objectContaining({ alive: true }) })]);
    expect(status.upstreams.map((u) => u.name)).toEqual(['up']);

    const errors = JSON.parse((await get(aport, '/status/errors', auth)).body) as { total: number; groups: Array<{ script: string; line: number; count: number }>; recent: Array<{ stack?: string }> };
    expect(errors.total).toBe(3);
    expect(errors.groups).toEqual([expect.objectContaining({ line: 2, count: 3 })]);
    expect(errors.groups[0]!.script).toMatch(/r\.ts$/);
    expect(errors.recent[0]!.stack).toMatch(/r\.ts:2/);

    expect((await get(aport, '/nope', auth)).status).toBe(404);
    // RFC 9110: HEAD where GET is, and a 405 names the methods (Allow).
    const head = await send(aport, 'HEAD', '/metrics', auth);
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect((await send(aport, 'HEAD', '/status', auth)).status).toBe(200);
    const post = await send(aport, 'POST', '/status', auth);
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    const getReload = await get(aport, '/reload', auth);
    expect(getReload.status).toBe(405);
    expect(getReload.headers.allow).toBe('POST');
  });

  it('status_class "aborted" is a client that left; a response cut because the upstream died counts under 5xx', async () => {
    const origin = await startOrigin((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
      res.write('x'.repeat(100));
      // /die: the origin goes away mid-body; /slow: it keeps the client waiting.
      if (req.url === '/die') setTimeout(() => res.socket?.destroy(), 20);
    });
    const file = writeConfig(`listen:
  - address: 127.0.0.1:0
admin: { address: "127.0.0.1:0" }
log: { level: silent }
upstreams:
  up: { targets: ["${origin.address}"], retries: 0 }
routes:
  - name: cutroute
    upstream: up
`);
    const server = await ProxyServer.start(parseConfig(readFileSync(file, 'utf8'), file), createLogger('silent'));
    onTestFinished(() => server.shutdown(false));
    const port = server.ports[0]!;
    const closed = (path: string, leave: boolean) =>
      new Promise<void>((resolve) => {
        const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
          res.on('data', () => {
            if (leave) req.destroy();
          });
          res.on('error', () => undefined);
          res.on('close', () => resolve());
        });
        req.on('error', () => resolve());
      });
    const count = async (cls: string) => sumOf(parsePrometheusText(await metricsText(false)), 'scriptgate_requests_total', { route: 'cutroute', status_class: cls });
    await closed('/die', false);
    await closed('/slow', true);
    // Both finish on the proxy's side shortly after the client sees its end.
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && (await count('5xx')) + (await count('aborted')) < 2) await new Promise((r) => setTimeout(r, 10));
    expect(await count('5xx')).toBe(1);
    expect(await count('aborted')).toBe(1);
    expect(await count('2xx')).toBe(0);
  });
});

describe('admin API across reloads (scriptgate start)', { timeout: 60_000 }, () => {
  it('a reload that changes admin.token applies it at once; one that moves admin or changes workers says it waits for a restart', async () => {
    const origin = await startOrigin();
    const [port, aport, other] = [await freePort(), await freePort(), await freePort()];
    const config = (token: string, admin = aport) => `listen:\n  - address: 127.0.0.1:${port}\nadmin: { address: 127.0.0.1:${admin}, token: ${token} }\nreload: { watch: false }\nlog: { level: info, access_log: false }\nupstreams:\n  up: { targets: ["${origin.address}"] }\nroutes:\n  - upstream: up\n`;
    const file = writeConfig(config('first-token'));
    const c = runCli(['start', '-c', file]);
    await c.waitFor((lines) => lines.some((l) => l.msg === 'admin listening'));
    writeFileSync(file, config('second-token'));
    const rotated = await send(aport, 'POST', '/reload', { authorization: 'Bearer first-token' });
    expect(rotated.status).toBe(200);
    expect(JSON.parse(rotated.body).warnings).toEqual([]);
    expect((await get(aport, '/status', { authorization: 'Bearer first-token' })).status).toBe(401);
    expect((await get(aport, '/status', { authorization: 'Bearer second-token' })).status).toBe(200);
    writeFileSync(file, config('second-token', other).replace('listen:', 'workers: 2\nlisten:'));
    const moved = await send(aport, 'POST', '/reload', { authorization: 'Bearer second-token' });
    expect(JSON.parse(moved.body).warnings).toEqual(['admin: address changes take effect on restart; the admin listener stays where it is', 'workers: a change of the worker count takes effect on restart']);
  });
});

function send(port: number, method: string, path: string, headers: http.OutgoingHttpHeaders = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (ch: string) => (body += ch));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}
