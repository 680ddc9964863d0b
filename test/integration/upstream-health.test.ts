import http from 'node:http';
import net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { closeServer, request, startOrigin, startProxy, type Origin } from '../helpers/servers.ts';
import type { Upstream } from '../../src/upstream/upstream.ts';
import { registry } from '../../src/observability/metrics.ts';

function config(targets: string[], extra: string): string {
  return `listen:\n  - address: 127.0.0.1:0\nlog: { level: silent }\nupstreams:\n  up:\n    targets: [${targets.map((t) => `"${t}"`).join(', ')}]\n${extra}routes:\n  - upstream: up\n`;
}

/** Resolves when `address` in `up` turns `state` (up = true). */
function healthTurns(up: Upstream, address: string, state: boolean): Promise<void> {
  return new Promise((resolve) => {
    const on = (t: { address: string }, ok: boolean) => {
      if (t.address !== address || ok !== state) return;
      up.off('health', on);
      resolve();
    };
    up.on('health', on);
  });
}

/** An origin that answers `/health` with `healthStatus()` and everything else with 200. */
async function checkedOrigin(name: string, healthStatus: () => number = () => 200): Promise<Origin> {
  return startOrigin((req, res) => {
    res.writeHead(req.url === '/health' ? healthStatus() : 200, { 'x-origin': name });
    res.end(name);
  }, name);
}

async function names(port: number, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const res = await request(port);
    expect(res.status).toBe(200);
    out.push(res.headers['x-origin'] as string);
  }
  return out;
}

describe('upstream health', () => {
  it('active HTTP checks: a killed target stops getting traffic within the interval and comes back when restarted', async () => {
    const a = await checkedOrigin('a');
    const b = await checkedOrigin('b');
    const hc = '    retries: 0\n    passive: { max_fails: 0 }\n    health_check: { path: /health, interval: 100ms, timeout: 500ms, unhealthy_threshold: 1, healthy_threshold: 1 }\n';
    const { port, server } = await startProxy(config([a.address, b.address], hc));
    const up = server.generation.upstreams.get('up')!;
    expect(new Set(await names(port, 4))).toEqual(new Set(['a', 'b']));

    const down = healthTurns(up, b.address, false);
    const killedAt = Date.now();
    await closeServer(b.server);
    await down;
    const detectMs = Date.now() - killedAt;
    expect(detectMs).toBeLessThan(1000);
    expect(await names(port, 6)).toEqual(Array(6).fill('a'));
    expect(up.status().targets.find((t) => t.address === b.address)).toMatchObject({ healthy: false, active: 'down' });

    const back = healthTurns(up, b.address, true);
    const again = http.createServer((_req, res) => res.writeHead(200, { 'x-origin': 'b2' }).end('b2'));
    await new Promise<void>((r) => again.listen(b.port, '127.0.0.1', r));
    onTestFinished(() => closeServer(again));
    await back;
    expect(new Set(await names(port, 4))).toEqual(new Set(['a', 'b2']));
  });

  it('active TCP checks mark a closed port down; /status and the metric show it', async () => {
    const a = await checkedOrigin('a');
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const deadAddr = `127.0.0.1:${(dead.address() as net.AddressInfo).port}`;
    await closeServer(dead);
    const { server } = await startProxy(config([a.address, deadAddr], '    health_check: { type: tcp, interval: 50ms, unhealthy_threshold: 2 }\n'));
    const up = server.generation.upstreams.get('up')!;
    if (up.status().targets.find((t) => t.address === deadAddr)!.healthy) await healthTurns(up, deadAddr, false);
    const st = up.status();
    expect(st.targets).toEqual([
      expect.objectContaining({ address: a.address, healthy: true, active: 'up' }),
      expect.objectContaining({ address: deadAddr, healthy: false, active: 'down', lastProbeError: expect.stringContaining('ECONNREFUSED') }),
    ]);
    const text = await registry.metrics();
    expect(text).toContain(`scriptgate_upstream_target_up{upstream="up",target="${a.address}"} 1`);
    expect(text).toContain(`scriptgate_upstream_target_up{upstream="up",target="${deadAddr}"} 0`);
  });

  it('passive ejection: after max_fails broken tries a target gets no traffic until its cool-down ends', async () => {
    const live = await checkedOrigin('live');
    let accepted = 0;
    const breaker = net.createServer((s) => {
      accepted++;
      s.destroy();
    });
    await new Promise<void>((r) => breaker.listen(0, '127.0.0.1', r));
    onTestFinished(() => closeServer(breaker));
    const bad = `127.0.0.1:${(breaker.address() as net.AddressInfo).port}`;
    const { port, server } = await startProxy(config([bad, live.address], '    passive: { max_fails: 2, cooldown: 60s }\n'));
    const up = server.generation.upstreams.get('up')!;
    const ejected = healthTurns(up, bad, false);
    expect(await names(port, 12)).toEqual(Array(12).fill('live'));
    await ejected;
    expect(accepted).toBe(2);
    expect(up.status().targets[0]).toMatchObject({ address: bad, healthy: false, active: 'unchecked' });
    expect(up.status().targets[0]!.ejectedForMs).toBeGreaterThan(50_000);
  });

  it('passive ejection ends after the cool-down: the target is tried again (probation)', async () => {
    const live = await checkedOrigin('live');
    let refuse = true;
    const flaky = await startOrigin((req, res) => {
      if (refuse) return void req.socket.destroy();
      res.writeHead(200, { 'x-origin': 'flaky' }).end('flaky');
    });
    const { port, server } = await startProxy(config([flaky.address, live.address], '    passive: { max_fails: 1, cooldown: 200ms }\n'));
    const up = server.generation.upstreams.get('up')!;
    expect(await names(port, 3)).toEqual(['live', 'live', 'live']);
    expect(up.status().targets[0]!.healthy).toBe(false);
    refuse = false;
    await expect.poll(() => up.status().targets[0]!.healthy, { interval: 20, timeout: 2000 }).toBe(true);
    expect(new Set(await names(port, 4))).toEqual(new Set(['flaky', 'live']));
  });

  for (const mode of ['fail_open', 'fail_closed'] as const) {
    it(`all targets unhealthy with all_unhealthy: ${mode} → ${mode === 'fail_open' ? 'traffic still flows' : '503'}`, async () => {
      const a = await checkedOrigin('a', () => 500);
      const b = await checkedOrigin('b', () => 500);
      const { port, server } = await startProxy(
        config([a.address, b.address], `    all_unhealthy: ${mode}\n    health_check: { path: /health, interval: 50ms, unhealthy_threshold: 1 }\n`),
      );
      const up = server.generation.upstreams.get('up')!;
      await Promise.all([a, b].map((o) => (up.status().targets.find((t) => t.address === o.address)!.healthy ? healthTurns(up, o.address, false) : undefined)));
      const res = await request(port);
      if (mode === 'fail_open') expect(res.status).toBe(200);
      else {
        expect(res.status).toBe(503);
        expect(res.text).toContain('every target is unhealthy');
      }
    });
  }

  it('health checks stop when the generation is disposed', async () => {
    let probes = 0;
    const a = await startOrigin((req, res) => {
      if (req.url === '/health') probes++;
      res.end('ok');
    });
    const { server } = await startProxy(config([a.address], '    health_check: { path: /health, interval: 20ms }\n'));
    const up = server.generation.upstreams.get('up')!;
    await expect.poll(() => probes, { interval: 10 }).toBeGreaterThan(2);
    await server.shutdown(false);
    await up.close();
    const after = probes;
    await new Promise((r) => setTimeout(r, 100)); // five intervals: no probe may start
    expect(probes).toBe(after);
  });
});
