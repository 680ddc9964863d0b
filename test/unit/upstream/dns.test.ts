import { describe, expect, it, onTestFinished } from 'vitest';
import { configSchema } from '../../../src/config/schema.ts';
import { Upstream } from '../../../src/upstream/upstream.ts';

function upstreamConfig(targets: unknown[], extra: Record<string, unknown> = {}) {
  return configSchema.parse({ listen: [{ address: '127.0.0.1:0' }], upstreams: { up: { targets, ...extra } }, routes: [{ upstream: 'up' }] }).upstreams.up!;
}

describe('DNS targets', () => {
  it('a named target becomes one endpoint per address; re-resolution keeps the endpoints (and pools) of addresses that remain', async () => {
    let answer = ['127.0.0.1'];
    const lookups: string[] = [];
    const up = new Upstream('up', upstreamConfig(['svc.test:8080', '127.0.0.9:80'], { dns: { interval: 20 } }), undefined, {
      resolver: async (host) => {
        lookups.push(host);
        return answer;
      },
    });
    onTestFinished(() => up.close());
    await up.ready;
    expect(up.targets.map((t) => [t.address, t.target])).toEqual([
      ['127.0.0.1:8080', 'svc.test:8080'],
      ['127.0.0.9:80', '127.0.0.9:80'],
    ]);
    const kept = up.targets[0]!;
    const pool = kept.pool;

    answer = ['127.0.0.1', '127.0.0.2'];
    await new Promise((r) => up.once('resolved', r));
    expect(up.targets.map((t) => t.address)).toEqual(['127.0.0.1:8080', '127.0.0.2:8080', '127.0.0.9:80']);
    expect(up.targets[0]).toBe(kept);
    expect(up.targets[0]!.pool).toBe(pool);

    answer = ['127.0.0.2'];
    await new Promise((r) => up.once('resolved', r));
    expect(up.targets.map((t) => t.address)).toEqual(['127.0.0.2:8080', '127.0.0.9:80']);
    expect(pool.closed).toBe(true);
    expect(new Set(lookups)).toEqual(new Set(['svc.test']));
  });

  it('a failed lookup keeps the last addresses', async () => {
    let fail = false;
    let failures = 0;
    const up = new Upstream('up', upstreamConfig(['svc.test:80'], { dns: { interval: 10 } }), undefined, {
      resolver: async () => {
        if (fail && ++failures) throw new Error('ENOTFOUND');
        return ['127.0.0.3'];
      },
    });
    onTestFinished(() => up.close());
    await up.ready;
    fail = true;
    const before = up.targets[0];
    await expect.poll(() => failures, { interval: 10, timeout: 2000 }).toBeGreaterThan(1);
    expect(up.targets[0]).toBe(before);
    expect(up.targets.map((t) => t.address)).toEqual(['127.0.0.3:80']);
  });

  it('config accepts every hash_key form and rejects others', () => {
    for (const k of ['header:x-user', 'cookie:sid', 'client_ip', 'path']) expect(upstreamConfig(['a:1'], { hash_key: k }).hash_key).toBe(k);
    expect(() => upstreamConfig(['a:1'], { hash_key: 'query:x' })).toThrow(/hash_key|header:<name>/);
    expect(() => upstreamConfig(['a:1'], { tls: { cert: 'c.pem' } })).toThrow(/tls.cert and tls.key go together/);
  });
});
