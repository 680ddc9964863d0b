/**
 * A reload builds new Upstream objects; the health verdicts of targets that are still configured
 * carry over (Envoy keeps host health across cluster updates), so a target that failed its checks
 * gets no traffic from the new generation until it passes them again.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { configSchema } from '../../../src/config/schema.ts';
import { Upstream } from '../../../src/upstream/upstream.ts';

function upstreamConfig(targets: string[]) {
  const cfg = { targets, health_check: { type: 'tcp', interval: '1h', unhealthy_threshold: 2, healthy_threshold: 2 }, passive: { max_fails: 1, cooldown: '1h' } };
  return configSchema.parse({ listen: [{ address: '127.0.0.1:0' }], upstreams: { up: cfg }, routes: [{ upstream: 'up' }] }).upstreams.up!;
}

describe('health across reloads', () => {
  it('a target down by active checks, and one ejected by passive failures, stay so in the next generation; new targets start up', async () => {
    const before = new Upstream('up', upstreamConfig(['127.0.0.1:1001', '127.0.0.1:1002', '127.0.0.1:1003']));
    onTestFinished(() => before.close());
    const [a, b, c] = before.targets;
    a!.health.probe(false, 'refused');
    a!.health.probe(false, 'refused');
    before.failed(b!, 'PRX_ERR_UPSTREAM_CONNECT');
    const now = performance.now();
    expect([a!.health.isUp(now), b!.health.isUp(now), c!.health.isUp(now)]).toEqual([false, false, true]);

    const after = new Upstream('up', upstreamConfig(['127.0.0.1:1002', '127.0.0.1:1001', '127.0.0.1:1004']), undefined, { previous: before });
    onTestFinished(() => after.close());
    const byAddress = new Map(after.targets.map((t) => [t.address, t]));
    const later = performance.now();
    expect(byAddress.get('127.0.0.1:1001')!.health.isUp(later)).toBe(false);
    expect(byAddress.get('127.0.0.1:1002')!.health.isUp(later)).toBe(false);
    expect(byAddress.get('127.0.0.1:1004')!.health.isUp(later)).toBe(true);
    expect(after.pick()?.address).toBe('127.0.0.1:1004');
    // The carried-over streak continues: two passing probes bring the checked target back.
    const a2 = byAddress.get('127.0.0.1:1001')!;
    a2.health.probe(true);
    expect(a2.health.isUp(performance.now())).toBe(false);
    a2.health.probe(true);
    expect(a2.health.isUp(performance.now())).toBe(true);
  });
});
