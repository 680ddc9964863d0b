/**
 * Weighted random: each pick is independent; a target's share converges to weight / total weight.
 * Cheap and stateless, so it spreads load well across many proxy processes that share nothing.
 */
import type { Balancer, Candidate } from './balancer.ts';

export function random<T extends Candidate>(targets: readonly T[]): Balancer<T> {
  return {
    pick({ skip }) {
      let total = 0;
      for (const t of targets) if (!skip?.(t)) total += t.weight;
      if (total === 0) return undefined;
      let r = Math.random() * total;
      let last: T | undefined;
      for (const t of targets) {
        if (skip?.(t)) continue;
        last = t;
        if ((r -= t.weight) < 0) return t;
      }
      return last;
    },
  };
}
