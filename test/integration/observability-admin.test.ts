/**
 * The admin API of a single process: token check, /status (tenants, upstreams), /status/errors
 * after a failing script, /metrics with active connections by protocol and phase durations.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { ProxyServer } from '../../src/control/proxy-server.ts';
import { startAdmin } from '../../src/control/admin.ts';
import { statusDocument } from '../../src/control/status.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { errorReport } from '../../src/observability/error-report.ts';
import { metricsContentType, metricsText } from '../../src/observability/metrics.ts';
import { closeServer, request, startOrigin, writeConfig } from '../helpers/servers.ts';
import { parsePrometheusText, sumOf } from '../helpers/prom-text.ts';

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
      token: loaded.config.admin!.token,
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
  });
});
