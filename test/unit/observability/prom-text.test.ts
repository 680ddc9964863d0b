/** The test helper's Prometheus text parser, on prom-client's own output. */
import client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parsePrometheusText, sumOf } from '../../helpers/prom-text.ts';

describe('parsePrometheusText', () => {
  it('reads types, labels with escapes, histogram buckets with +Inf', async () => {
    const reg = new client.Registry();
    const c = new client.Counter({ name: 't_total', help: 'h', labelNames: ['a'], registers: [reg] });
    const h = new client.Histogram({ name: 't_seconds', help: 'h', buckets: [0.1, 1], registers: [reg] });
    c.inc({ a: 'x"y\\z\nw' }, 3);
    c.inc({ a: 'plain' });
    h.observe(0.05);
    h.observe(5);
    const e = parsePrometheusText(await reg.metrics());
    expect(e.types.get('t_total')).toBe('counter');
    expect(e.types.get('t_seconds')).toBe('histogram');
    expect(sumOf(e, 't_total', { a: 'x"y\\z\nw' })).toBe(3);
    expect(sumOf(e, 't_total')).toBe(4);
    expect(sumOf(e, 't_seconds_bucket', { le: '0.1' })).toBe(1);
    expect(sumOf(e, 't_seconds_bucket', { le: '+Inf' })).toBe(2);
    expect(sumOf(e, 't_seconds_count')).toBe(2);
  });

  it('throws on a line it cannot read', () => {
    expect(() => parsePrometheusText('metric{a="x} 1\n')).toThrow();
    expect(() => parsePrometheusText('metric nope\n')).toThrow();
  });
});
