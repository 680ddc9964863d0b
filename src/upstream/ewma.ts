/**
 * Latency-aware balancing: power of two choices over a peak-EWMA of response-head latency
 * (Finagle/Linkerd's "P2C + peak EWMA"). Two distinct targets are drawn at random and the one with
 * the lower cost wins, cost = (latency + 1 ms) × (in flight + 1) / weight. A slow target's latency
 * jumps up at once (peak) and decays over ~10 s when it is not picked, so it is probed again later.
 * Targets with no sample yet cost the least, so new targets are tried first.
 */
import type { Balancer, Candidate } from './balancer.ts';

function cost(t: Candidate, now: number): number {
  return ((t.latencyMs(now) + 1) * (t.inFlight + 1)) / t.weight;
}

export function ewma<T extends Candidate>(targets: readonly T[]): Balancer<T> {
  const live: T[] = [];
  return {
    pick({ skip }) {
      live.length = 0;
      for (const t of targets) if (!skip?.(t)) live.push(t);
      if (live.length <= 1) return live[0];
      const i = Math.floor(Math.random() * live.length);
      let j = Math.floor(Math.random() * (live.length - 1));
      if (j >= i) j++;
      const now = performance.now();
      const a = live[i]!;
      const b = live[j]!;
      return cost(b, now) < cost(a, now) ? b : a;
    },
  };
}
