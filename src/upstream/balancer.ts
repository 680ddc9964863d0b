/**
 * Target selection for one upstream. An algorithm is a small object with `pick()`; the proxy calls
 * it once per try (again, with the failed target excluded, on failover). Default: smooth weighted
 * round-robin (nginx's algorithm: over any window of total-weight picks each target gets exactly its
 * weight, and picks of a heavy target are spread out instead of bunched).
 */

export interface Weighted {
  weight: number;
}

export interface Balancer<T extends Weighted> {
  /** Returns the next target, skipping those in `exclude`; undefined when none is left. */
  pick(exclude?: ReadonlySet<T>): T | undefined;
}

/** Smooth weighted round-robin. With equal weights this is plain round-robin. */
export function roundRobin<T extends Weighted>(targets: readonly T[]): Balancer<T> {
  const current = new Float64Array(targets.length);
  let total = 0;
  for (const t of targets) total += t.weight;
  if (targets.length === 1) return { pick: (exclude) => (exclude?.has(targets[0]!) ? undefined : targets[0]) };
  return {
    pick(exclude) {
      let best = -1;
      let sum = 0;
      for (let i = 0; i < targets.length; i++) {
        const t = targets[i]!;
        if (exclude?.has(t)) continue;
        current[i]! += t.weight;
        sum += t.weight;
        if (best < 0 || current[i]! > current[best]!) best = i;
      }
      if (best < 0) return undefined;
      current[best]! -= exclude ? sum : total;
      return targets[best];
    },
  };
}

/** Uniform random over targets, weighted. */
export function random<T extends Weighted>(targets: readonly T[]): Balancer<T> {
  return {
    pick(exclude) {
      const live = exclude ? targets.filter((t) => !exclude.has(t)) : targets;
      let total = 0;
      for (const t of live) total += t.weight;
      let r = Math.random() * total;
      for (const t of live) if ((r -= t.weight) < 0) return t;
      return live[live.length - 1];
    },
  };
}

/** Fewest requests in flight wins; ties go round-robin so idle targets share the load. */
export function leastConn<T extends Weighted & { inFlight: number }>(targets: readonly T[]): Balancer<T> {
  let next = 0;
  return {
    pick(exclude) {
      let best: T | undefined;
      for (let k = 0; k < targets.length; k++) {
        const t = targets[(next + k) % targets.length]!;
        if (exclude?.has(t)) continue;
        if (!best || t.inFlight / t.weight < best.inFlight / best.weight) best = t;
      }
      next = (next + 1) % targets.length;
      return best;
    },
  };
}
