/**
 * Consistent hashing, ketama-style: every target owns 160 points per unit of weight on a 32-bit
 * ring (40 MD5 digests of `id-n`, 4 points each, as libketama does); a request's key hashes to a
 * point and goes to the owner of the next point clockwise. Adding or removing one of N targets moves
 * only about 1/N of the keys. Skipped (failed or unhealthy) targets are passed over clockwise, so a
 * key falls back to the same next target every time. A request without a key gets a random target.
 */
import { createHash } from 'node:crypto';
import type { Balancer, Candidate } from './balancer.ts';
import { random } from './random.ts';

const DIGESTS_PER_WEIGHT = 40;

/** 32-bit ring position of `key` (first 4 bytes of its MD5, little-endian, as ketama). */
export function ringHash(key: string): number {
  return createHash('md5').update(key).digest().readUInt32LE(0);
}

/** The ring itself; exported for unit tests. */
export class HashRing<T extends { id: string; weight: number }> {
  readonly #points: Uint32Array;
  readonly #owners: Uint32Array;
  readonly #nodes: readonly T[];

  constructor(nodes: readonly T[]) {
    this.#nodes = nodes;
    const pairs: Array<[number, number]> = [];
    nodes.forEach((node, idx) => {
      for (let n = 0; n < DIGESTS_PER_WEIGHT * node.weight; n++) {
        const d = createHash('md5').update(`${node.id}-${n}`).digest();
        for (let k = 0; k < 4; k++) pairs.push([d.readUInt32LE(k * 4), idx]);
      }
    });
    pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    this.#points = Uint32Array.from(pairs, (p) => p[0]);
    this.#owners = Uint32Array.from(pairs, (p) => p[1]);
  }

  /** Number of points on the ring. */
  get size(): number {
    return this.#points.length;
  }

  /** Owner of `hash`, walking clockwise past nodes for which `skip` returns true. */
  get(hash: number, skip?: (t: T) => boolean): T | undefined {
    const points = this.#points;
    const n = points.length;
    if (n === 0) return undefined;
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid]! < hash) lo = mid + 1;
      else hi = mid;
    }
    for (let step = 0; step < n; step++) {
      const node = this.#nodes[this.#owners[(lo + step) % n]!]!;
      if (!skip?.(node)) return node;
    }
    return undefined;
  }
}

export function consistentHash<T extends Candidate>(targets: readonly T[]): Balancer<T> {
  const ring = new HashRing(targets);
  const fallback = random(targets);
  return {
    pick(req) {
      if (req.key === undefined) return fallback.pick(req);
      return ring.get(ringHash(req.key), req.skip);
    },
  };
}
