import { describe, expect, it } from 'vitest';
import { roundRobin } from '../../../src/upstream/round-robin.ts';
import { random } from '../../../src/upstream/random.ts';
import { leastConn } from '../../../src/upstream/least-conn.ts';
import { ewma } from '../../../src/upstream/ewma.ts';

interface T {
  id: string;
  name: string;
  weight: number;
  inFlight: number;
  lat: number;
  latencyMs(now: number): number;
}
const t = (name: string, weight = 1, lat = 0): T => ({ id: name, name, weight, inFlight: 0, lat, latencyMs() { return this.lat; } });
const not = (...xs: T[]) => ({ skip: (x: T) => xs.includes(x) });

describe('roundRobin', () => {
  it('equal weights alternate exactly', () => {
    const b = roundRobin([t('a'), t('b'), t('c')]);
    expect(Array.from({ length: 6 }, () => b.pick({})!.name).join('')).toBe('abcabc');
  });

  it('weights are honoured exactly over each cycle and spread out (smooth)', () => {
    const b = roundRobin([t('a', 5), t('b', 1), t('c', 1)]);
    const seq = Array.from({ length: 7 }, () => b.pick({})!.name).join('');
    expect(seq).toBe('aabacaa');
    const counts: Record<string, number> = {};
    for (let i = 0; i < 700; i++) {
      const n = b.pick({})!.name;
      counts[n] = (counts[n] ?? 0) + 1;
    }
    expect(counts).toEqual({ a: 500, b: 100, c: 100 });
  });

  it('1:3 gives 25/75 over 100 picks', () => {
    const b = roundRobin([t('a', 1), t('b', 3)]);
    const seq = Array.from({ length: 100 }, () => b.pick({})!.name);
    expect(seq.filter((x) => x === 'a')).toHaveLength(25);
  });

  it('skips excluded targets and returns undefined when all are excluded', () => {
    const a = t('a');
    const b2 = t('b');
    const b = roundRobin([a, b2]);
    for (let i = 0; i < 4; i++) expect(b.pick(not(a))).toBe(b2);
    expect(b.pick(not(a, b2))).toBeUndefined();
  });

  it('a single target is always picked unless excluded', () => {
    const only = t('only');
    const b = roundRobin([only]);
    expect(b.pick({})).toBe(only);
    expect(b.pick(not(only))).toBeUndefined();
  });

  it('keeps exact proportions after failover picks with exclusions', () => {
    const a = t('a');
    const c = t('c');
    const b = roundRobin([a, c]);
    b.pick(not(a));
    b.pick(not(a));
    const seq = Array.from({ length: 10 }, () => b.pick({})!.name);
    expect(seq.filter((x) => x === 'a')).toHaveLength(5);
  });
});

describe('random, leastConn, ewma', () => {
  it('random never returns an excluded target and honours weights', () => {
    const a = t('a');
    const c = t('c', 3);
    const b = random([a, c]);
    for (let i = 0; i < 50; i++) expect(b.pick(not(a))).toBe(c);
    let hits = 0;
    for (let i = 0; i < 4000; i++) if (b.pick({}) === c) hits++;
    expect(hits / 4000).toBeGreaterThan(0.7);
    expect(hits / 4000).toBeLessThan(0.8);
  });

  it('leastConn picks the target with fewest requests in flight', () => {
    const a = t('a');
    const c = t('c');
    a.inFlight = 3;
    const b = leastConn([a, c]);
    expect(b.pick({})).toBe(c);
    c.inFlight = 5;
    expect(b.pick({})).toBe(a);
  });

  it('ewma (p2c) prefers the faster target and never returns a skipped one', () => {
    const fast = t('fast', 1, 2);
    const slow = t('slow', 1, 80);
    const mid = t('mid', 1, 10);
    const b = ewma([fast, slow, mid]);
    const counts = { fast: 0, slow: 0, mid: 0 } as Record<string, number>;
    for (let i = 0; i < 3000; i++) counts[b.pick({})!.name]!++;
    // P2C: the slowest of three wins only when drawn against itself, which never happens.
    expect(counts.slow).toBe(0);
    expect(counts.fast).toBeGreaterThan(counts.mid!);
    for (let i = 0; i < 50; i++) expect(b.pick(not(fast, mid))).toBe(slow);
  });

  it('ewma weighs load in: a fast target with many requests in flight loses to an idle one', () => {
    const fast = t('fast', 1, 2);
    const other = t('other', 1, 10);
    fast.inFlight = 20;
    const b = ewma([fast, other]);
    expect(b.pick({})).toBe(other);
  });
});
