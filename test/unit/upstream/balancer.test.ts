import { describe, expect, it } from 'vitest';
import { leastConn, random, roundRobin } from '../../../src/upstream/balancer.ts';

const t = (name: string, weight = 1) => ({ name, weight, inFlight: 0 });

describe('roundRobin', () => {
  it('equal weights alternate exactly', () => {
    const b = roundRobin([t('a'), t('b'), t('c')]);
    expect(Array.from({ length: 6 }, () => b.pick()!.name).join('')).toBe('abcabc');
  });

  it('weights are honoured exactly over each cycle and spread out (smooth)', () => {
    const b = roundRobin([t('a', 5), t('b', 1), t('c', 1)]);
    const seq = Array.from({ length: 7 }, () => b.pick()!.name).join('');
    expect(seq).toBe('aabacaa');
    const counts: Record<string, number> = {};
    for (let i = 0; i < 700; i++) {
      const n = b.pick()!.name;
      counts[n] = (counts[n] ?? 0) + 1;
    }
    expect(counts).toEqual({ a: 500, b: 100, c: 100 });
  });

  it('1:3 gives 25/75 over 100 picks', () => {
    const b = roundRobin([t('a', 1), t('b', 3)]);
    const seq = Array.from({ length: 100 }, () => b.pick()!.name);
    expect(seq.filter((x) => x === 'a')).toHaveLength(25);
  });

  it('skips excluded targets and returns undefined when all are excluded', () => {
    const a = t('a');
    const b2 = t('b');
    const b = roundRobin([a, b2]);
    for (let i = 0; i < 4; i++) expect(b.pick(new Set([a]))).toBe(b2);
    expect(b.pick(new Set([a, b2]))).toBeUndefined();
  });

  it('a single target is always picked unless excluded', () => {
    const only = t('only');
    const b = roundRobin([only]);
    expect(b.pick()).toBe(only);
    expect(b.pick(new Set([only]))).toBeUndefined();
  });

  it('keeps exact proportions after failover picks with exclusions', () => {
    const a = t('a');
    const c = t('c');
    const b = roundRobin([a, c]);
    b.pick(new Set([a]));
    b.pick(new Set([a]));
    const seq = Array.from({ length: 10 }, () => b.pick()!.name);
    expect(seq.filter((x) => x === 'a')).toHaveLength(5);
  });
});

describe('random and leastConn', () => {
  it('random never returns an excluded target', () => {
    const a = t('a');
    const c = t('c');
    const b = random([a, c]);
    for (let i = 0; i < 50; i++) expect(b.pick(new Set([a]))).toBe(c);
  });

  it('leastConn picks the target with fewest requests in flight', () => {
    const a = t('a');
    const c = t('c');
    a.inFlight = 3;
    const b = leastConn([a, c]);
    expect(b.pick()).toBe(c);
    c.inFlight = 5;
    expect(b.pick()).toBe(a);
  });
});
