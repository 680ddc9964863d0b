/**
 * Metrics, status and error reports of a real cluster: `scriptgate start` with `workers: 2` and an
 * admin listener, known traffic spread over many connections (until both workers have served),
 * then `/metrics` scraped with a real HTTP client, parsed as Prometheus text, and the counters
 * compared with exact numbers; `/status` and `/status/errors` gathered from both workers.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { request, startOrigin, writeConfig } from '../helpers/servers.ts';
import { freePort, spawnCli } from '../helpers/spawn-cli.ts';
import { parsePrometheusText, samples, sumOf } from '../helpers/prom-text.ts';

function get(port: number, path: string): Promise<{ status: number; body: string; type: string | undefined }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body, type: res.headers['content-type'] }));
      })
      .on('error', reject);
  });
}

const ACCESS = `export default function access(ctx) {
  if (ctx.request.path === '/boom') {
    const x = null;
    return x.nope;
  }
}
`;

describe('observability in a cluster', { timeout: 90_000 }, () => {
  it('workers: 2 — /metrics sums both workers exactly; /status and /status/errors gather both', async () => {
    const origin = await startOrigin((req, res) => res.end('hello')); // 5 bytes
    const port = await freePort();
    const adminPort = await freePort();
    const file = writeConfig(
      `workers: 2
listen:
  - address: 127.0.0.1:${port}
admin: { address: 127.0.0.1:${adminPort} }
reload: { watch: false }
upstreams:
  up: { targets: ["${origin.address}"] }
tenants:
  acme: { cpu_ms: 2000 }
routes:
  - name: scripted
    match: { path_prefix: /boom }
    tenant: acme
    upstream: up
    access_by_script: access.ts
  - name: main
    upstream: up
`,
      { 'access.ts': ACCESS },
    );
    const c = spawnCli(file);
    await c.waitFor((ls) => ls.some((l) => l.msg === 'all workers listening'));
    const access = () => c.lines().filter((l) => l.msg === 'access');
    const pids = () => new Set(access().map((l) => l.pid));

    let gets = 0;
    let posts = 0;
    for (let batch = 0; batch < 30 && (batch < 2 || pids().size < 2); batch++) {
      const rs = await Promise.all([
        ...Array.from({ length: 8 }, (_, i) => request(port, { path: `/g/${batch}/${i}` })),
        ...Array.from({ length: 4 }, () => request(port, { method: 'POST', path: '/p', body: 'x'.repeat(100) })),
      ]);
      for (const r of rs) {
        expect(r.status).toBe(200);
        expect(r.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      }
      gets += 8;
      posts += 4;
      await c.waitFor(() => access().length >= gets + posts, 10_000);
    }
    expect(pids().size).toBe(2);
    const booms = await Promise.all(Array.from({ length: 6 }, () => request(port, { path: '/boom' })));
    for (const r of booms) expect(r.status).toBe(500);
    const total = gets + posts + booms.length;
    await c.waitFor(() => access().length >= total, 10_000);

    const m = await get(adminPort, '/metrics');
    expect(m.status).toBe(200);
    expect(m.type).toMatch(/^text\/plain/);
    const e = parsePrometheusText(m.body);
    expect(e.types.get('scriptgate_requests_total')).toBe('counter');
    expect(sumOf(e, 'scriptgate_requests_total', { route: 'main', method: 'GET', status_class: '2xx' })).toBe(gets);
    expect(sumOf(e, 'scriptgate_requests_total', { route: 'main', method: 'POST', status_class: '2xx' })).toBe(posts);
    expect(sumOf(e, 'scriptgate_requests_total', { route: 'scripted', method: 'GET', status_class: '5xx' })).toBe(booms.length);
    expect(sumOf(e, 'scriptgate_requests_total')).toBe(total);
    expect(sumOf(e, 'scriptgate_request_body_bytes_total', { route: 'main' })).toBe(posts * 100);
    expect(sumOf(e, 'scriptgate_response_body_bytes_total', { route: 'main' })).toBe((gets + posts) * 5);
    expect(sumOf(e, 'scriptgate_request_duration_seconds_count', { route: 'main' })).toBe(gets + posts);
    expect(sumOf(e, 'scriptgate_request_duration_seconds_bucket', { route: 'main', le: '+Inf' })).toBe(gets + posts);
    expect(sumOf(e, 'scriptgate_upstream_duration_seconds_count', { upstream: 'up' })).toBe(gets + posts);
    expect(sumOf(e, 'scriptgate_phase_duration_seconds_count', { tenant: 'acme', phase: 'access' })).toBe(booms.length);
    expect(sumOf(e, 'scriptgate_script_errors_total', { tenant: 'acme' })).toBe(booms.length);
    // Gauges: generation is the newest (max), not a sum; target up only when up in every worker.
    expect(sumOf(e, 'scriptgate_generation')).toBe(1);
    expect(samples(e, 'scriptgate_upstream_target_up', { upstream: 'up' }).map((s) => s.value)).toEqual([1]);
    // Node process metrics come from the workers too (and the primary).
    expect(samples(e, 'process_cpu_user_seconds_total').length).toBe(1);
    expect(e.types.get('nodejs_heap_size_used_bytes')).toBe('gauge');

    const status = JSON.parse((await get(adminPort, '/status')).body) as {
      version: string;
      workers: Array<{ pid: number; generation: number }>;
      generation: { id: number };
      routes: Array<{ name: string }>;
      upstreams: Array<{ name: string; targets: Array<{ healthy: boolean }> }>;
      tenants: Array<{ name: string; isolate?: { calls: number } }>;
    };
    expect(status.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(status.workers).toHaveLength(2);
    expect(new Set(status.workers.map((w) => w.pid))).toEqual(pids());
    expect(status.generation.id).toBe(1);
    expect(status.routes.map((r) => r.name)).toEqual(['scripted', 'main']);
    expect(status.upstreams[0]!.targets[0]!.healthy).toBe(true);
    expect(status.tenants.find((t) => t.name === 'acme')!.isolate!.calls).toBeGreaterThanOrEqual(booms.length);

    const errors = JSON.parse((await get(adminPort, '/status/errors')).body) as {
      total: number;
      groups: Array<{ script: string; line: number; count: number; tenant: string }>;
      recent: Array<{ route: string; tenant: string; message: string; time: string }>;
    };
    expect(errors.total).toBe(booms.length);
    expect(errors.groups).toHaveLength(1);
    expect(errors.groups[0]).toMatchObject({ line: 4, count: booms.length, tenant: 'acme' });
    expect(errors.groups[0]!.script).toMatch(/access\.ts$/);
    expect(errors.recent).toHaveLength(booms.length);
    expect(errors.recent[0]).toMatchObject({ route: 'scripted', tenant: 'acme' });
    expect(errors.recent[0]!.message).toMatch(/access\.ts:4:\d+: access script threw/);

    // A worker that dies is replaced with the configuration the cluster runs, not with an edit on
    // disk that was never reloaded (here a broken one), and what it had counted stays counted.
    const good = readFileSync(file, 'utf8');
    const reloadsBefore = c.lines().filter((l) => l.msg === 'config reloaded').length;
    writeFileSync(file, 'workers: 2\nroutes:\n  - upstream: nope\n');
    const victim = status.workers[0]!.pid;
    process.kill(victim, 'SIGKILL');
    let workers: Array<{ pid: number }> = [];
    for (const deadline = Date.now() + 20_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
      workers = (JSON.parse((await get(adminPort, '/status')).body) as { workers: Array<{ pid: number }> }).workers;
      if (workers.length === 2 && !workers.some((w) => w.pid === victim)) break;
    }
    expect(workers.map((w) => w.pid)).not.toContain(victim);
    expect(workers).toHaveLength(2);
    const again = parsePrometheusText((await get(adminPort, '/metrics')).body);
    expect(sumOf(again, 'scriptgate_requests_total', { route: 'main', method: 'GET', status_class: '2xx' })).toBe(gets);
    expect(sumOf(again, 'scriptgate_requests_total')).toBe(total);
    const after = await Promise.all(Array.from({ length: 12 }, (_, i) => request(port, { path: `/after/${i}` })));
    for (const r of after) expect(r.status).toBe(200);
    expect(c.stderr()).not.toContain('unknown upstream');

    // A worker that stops answering (SIGSTOP) keeps its counts in /metrics: counters never go back.
    const counted = sumOf(parsePrometheusText((await get(adminPort, '/metrics')).body), 'scriptgate_requests_total');
    expect(counted).toBe(total + after.length);
    const stopped = workers[0]!.pid;
    process.kill(stopped, 'SIGSTOP');
    try {
      expect(sumOf(parsePrometheusText((await get(adminPort, '/metrics')).body), 'scriptgate_requests_total')).toBe(counted);
      // A reload during which that worker dies is answered (it is not waited for: its replacement
      // starts on the new configuration) instead of hanging.
      writeFileSync(file, good);
      const reload = post(adminPort, '/reload');
      await c.waitFor((lines) => lines.filter((l) => l.msg === 'config reloaded').length >= reloadsBefore + 1);
      process.kill(stopped, 'SIGKILL');
      const answer = await reload;
      expect(answer.status).toBe(200);
    } finally {
      try {
        process.kill(stopped, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
});

describe('a replacement worker after a reload that changed listen', { timeout: 90_000 }, () => {
  it('binds what its siblings bound, not the new listen list (a reload does not rebind)', async () => {
    const origin = await startOrigin((req, res) => res.end('hello'));
    const [port, added, adminPort] = [await freePort(), await freePort(), await freePort()];
    const config = (listen: string) => `workers: 2\nlisten:\n${listen}admin: { address: 127.0.0.1:${adminPort} }\nreload: { watch: false }\nupstreams:\n  up: { targets: ["${origin.address}"] }\nroutes:\n  - upstream: up\n`;
    const file = writeConfig(config(`  - address: 127.0.0.1:${port}\n`));
    const c = spawnCli(file);
    await c.waitFor((lines) => lines.some((l) => l.msg === 'all workers listening'));
    writeFileSync(file, config(`  - address: 127.0.0.1:${port}\n  - address: 127.0.0.1:${added}\n`));
    const reload = JSON.parse((await post(adminPort, '/reload')).body) as { ok: boolean; warnings: string[] };
    expect(reload.ok).toBe(true);
    expect(reload.warnings.join()).toMatch(/listener changes take effect on restart/);
    const before = (JSON.parse((await get(adminPort, '/status')).body) as { workers: Array<{ pid: number }> }).workers.map((w) => w.pid);
    process.kill(before[0]!, 'SIGKILL');
    let workers: Array<{ pid: number }> = [];
    for (const deadline = Date.now() + 20_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
      workers = (JSON.parse((await get(adminPort, '/status')).body) as { workers: Array<{ pid: number }> }).workers;
      if (workers.length === 2 && !workers.some((w) => w.pid === before[0])) break;
    }
    expect(workers.map((w) => w.pid)).not.toContain(before[0]);
    const refused = await new Promise<boolean>((resolve) => {
      const s = net.connect(added, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(false)));
      s.once('error', () => resolve(true));
    });
    expect(refused).toBe(true);
    for (let i = 0; i < 6; i++) expect((await request(port, { path: `/r${i}` })).status).toBe(200);
  });
});

function post(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (ch: string) => (body += ch));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('cluster counts and generations across a rolling restart and a crash', { timeout: 90_000 }, () => {
  it('a rolling restart keeps what the old workers served since the last scrape; generations stay one number for the cluster; a reload while a replacement starts is answered and reaches it', async () => {
    const origin = await startOrigin((req, res) => res.end('hello'));
    const port = await freePort();
    const adminPort = await freePort();
    const file = writeConfig(`workers: 2
listen:
  - address: 127.0.0.1:${port}
admin: { address: 127.0.0.1:${adminPort} }
reload: { watch: false }
upstreams:
  up: { targets: ["${origin.address}"] }
routes:
  - name: main
    upstream: up
`);
    const c = spawnCli(file);
    await c.waitFor((ls) => ls.some((l) => l.msg === 'all workers listening'));
    const total = async () => sumOf(parsePrometheusText((await get(adminPort, '/metrics')).body), 'scriptgate_requests_total', { route: 'main' });
    const generations = async () => (JSON.parse((await get(adminPort, '/status')).body) as { workers: Array<{ pid: number; generation: number }> }).workers;
    expect(await total()).toBe(0);
    // Served and never scraped before the workers are replaced.
    for (let i = 0; i < 40; i++) expect((await request(port, { path: `/r/${i}` })).status).toBe(200);
    process.kill(c.child.pid!, 'SIGUSR2');
    await c.waitFor((ls) => ls.some((l) => l.msg === 'rolling restart done'), 30_000);
    expect(await total()).toBe(40);
    const rolled = await generations();
    expect(rolled.map((w) => w.generation)).toEqual([2, 2]);

    // A worker dies; a reload asked while its replacement is still starting is answered at once,
    // and the replacement ends up on the reloaded generation like its sibling.
    process.kill(rolled[0]!.pid, 'SIGKILL');
    await c.waitFor((ls) => ls.some((l) => l.msg === 'worker died; starting another'));
    const t0 = Date.now();
    const answer = await post(adminPort, '/reload');
    expect(answer.status).toBe(200);
    expect(Date.now() - t0).toBeLessThan(20_000);
    let workers: Array<{ pid: number; generation: number }> = [];
    for (const deadline = Date.now() + 20_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
      workers = await generations();
      if (workers.length === 2 && workers.every((w) => w.generation === 3)) break;
    }
    expect(workers.map((w) => w.generation)).toEqual([3, 3]);
    expect(workers.map((w) => w.pid)).not.toContain(rolled[0]!.pid);
    expect(sumOf(parsePrometheusText((await get(adminPort, '/metrics')).body), 'scriptgate_generation')).toBe(3);
  });
});
