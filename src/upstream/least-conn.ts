/**
 * Least connections: the target with the fewest requests in flight per unit of weight wins; ties
 * rotate (the scan starts one further each pick) so idle targets share the load evenly.
 */
import type { Balancer, Candidate } from './balancer.ts';

export function leastConn<T extends Candidate>(targets: readonly T[]): Balancer<T> {
  let next = 0;
  return {
    pick({ skip }) {
      let best: T | undefined;
      const n = targets.length;
      for (let k = 0; k < n; k++) {
        const t = targets[(next + k) % n]!;
        if (skip?.(t)) continue;
        if (!best || t.inFlight / t.weight < best.inFlight / best.weight) best = t;
      }
      next = n ? (next + 1) % n : 0;
      return best;
    },
  };
}
