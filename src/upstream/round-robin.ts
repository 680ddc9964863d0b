/**
 * Smooth weighted round-robin, nginx's algorithm: over any window of total-weight picks each
 * target gets exactly its weight, and picks of a heavy target are spread out instead of bunched.
 * With equal weights this is plain round-robin, starting at the first target. Skipped targets
 * neither gain nor lose credit.
 */
import type { Balancer, Candidate } from './balancer.ts';

export function roundRobin<T extends Candidate>(targets: readonly T[]): Balancer<T> {
  const current = new Float64Array(targets.length);
  return {
    pick({ skip }) {
      let best = -1;
      let sum = 0;
      for (let i = 0; i < targets.length; i++) {
        const t = targets[i]!;
        if (skip?.(t)) continue;
        current[i]! += t.weight;
        sum += t.weight;
        if (best < 0 || current[i]! > current[best]!) best = i;
      }
      if (best < 0) return undefined;
      current[best]! -= sum;
      return targets[best];
    },
  };
}
