import { describe, expect, it } from 'vitest';
import { HashRing, consistentHash, ringHash } from '../../../src/upstream/consistent-hash.ts';

const node = (id: string, weight = 1) => ({ id, weight, inFlight: 0, latencyMs: () => 0 });
const keys = Array.from({ length: 5000 }, (_, i) => `user-${i}`);

function owners(ring: HashRing<{ id: string; weight: number }>): Map<string, string> {
  return new Map(keys.map((k) => [k, ring.get(ringHash(k))!.id]));
}

describe('ketama ring', () => {
  it('has 160 points per unit of weight', () => {
    expect(new HashRing([node('a'), node('b', 2)]).size).toBe(480);
  });

  it('spreads keys evenly over equal nodes (within 20% of the mean)', () => {
    const ring = new HashRing(['a', 'b', 'c', 'd'].map((id) => node(`10.0.0.${id.charCodeAt(0)}:80`)));
    const counts = new Map<string, number>();
    for (const owner of owners(ring).values()) counts.set(owner, (counts.get(owner) ?? 0) + 1);
    for (const c of counts.values()) expect(Math.abs(c - 1250)).toBeLessThan(250);
  });

  it('adding a fifth node moves only keys to the new node, about 1/5 of them', () => {
    const base = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80', '10.0.0.4:80'].map((id) => node(id));
    const before = owners(new HashRing(base));
    const after = owners(new HashRing([...base, node('10.0.0.5:80')]));
    let moved = 0;
    for (const k of keys) {
      if (before.get(k) === after.get(k)) continue;
      moved++;
      expect(after.get(k)).toBe('10.0.0.5:80');
    }
    expect(moved / keys.length).toBeGreaterThan(0.12);
    expect(moved / keys.length).toBeLessThan(0.28);
  });

  it('removing a node moves only the keys it owned', () => {
    const all = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80', '10.0.0.4:80'].map((id) => node(id));
    const before = owners(new HashRing(all));
    const after = owners(new HashRing(all.filter((n) => n.id !== '10.0.0.3:80')));
    for (const k of keys) if (before.get(k) !== '10.0.0.3:80') expect(after.get(k)).toBe(before.get(k));
  });

  it('a skipped node\'s keys fall to the next node clockwise, the same one every time, others stay', () => {
    const all = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80'].map((id) => node(id));
    const ring = new HashRing(all);
    const skip = (n: { id: string }) => n.id === '10.0.0.2:80';
    for (const k of keys.slice(0, 500)) {
      const normal = ring.get(ringHash(k))!.id;
      const fallback = ring.get(ringHash(k), skip)!.id;
      if (normal !== '10.0.0.2:80') expect(fallback).toBe(normal);
      else expect(fallback).toBe(ring.get(ringHash(k), skip)!.id);
      expect(fallback).not.toBe('10.0.0.2:80');
    }
    expect(ring.get(1, () => true)).toBeUndefined();
  });

  it('the balancer is sticky per key and picks at random without a key', () => {
    const nodes = ['a:1', 'b:1', 'c:1'].map((id) => node(id));
    const b = consistentHash(nodes);
    for (const k of keys.slice(0, 200)) expect(b.pick({ key: k })).toBe(b.pick({ key: k }));
    const seen = new Set(Array.from({ length: 200 }, () => b.pick({})!.id));
    expect(seen.size).toBe(3);
  });
});
