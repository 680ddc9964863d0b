/**
 * Target selection for one upstream. An algorithm is one small object with `pick()`, built from
 * the upstream's current endpoints (and built again when DNS changes that list). The proxy calls
 * `pick()` once per try; on failover it calls it again with the failed targets skipped. Health is
 * applied by the caller through `skip`, so an algorithm never needs to know about it.
 *
 * Default algorithm: smooth weighted round-robin (see round-robin.ts).
 */
import { consistentHash } from './consistent-hash.ts';
import { ewma } from './ewma.ts';
import { leastConn } from './least-conn.ts';
import { random } from './random.ts';
import { roundRobin } from './round-robin.ts';

/** What an algorithm may read of a target. */
export interface Candidate {
  /** Stable identity (`ip:port`): the consistent-hash ring is built from it. */
  readonly id: string;
  readonly weight: number;
  /** Requests currently dispatched to this target. */
  readonly inFlight: number;
  /** Decayed peak-EWMA of time to response head, in ms (0 before the first response). */
  latencyMs(now: number): number;
}

/** One pick: targets for which `skip` returns true are never returned. */
export interface PickRequest<T> {
  skip?: (t: T) => boolean;
  /** Hash key of the request (consistent_hash only); undefined = no key, any target will do. */
  key?: string;
}

export interface Balancer<T extends Candidate> {
  /** Returns a target that is not skipped, or undefined when none is left. */
  pick(req: PickRequest<T>): T | undefined;
}

export type BalancerFactory = <T extends Candidate>(targets: readonly T[]) => Balancer<T>;

/** Config name → algorithm. Keys are the `balance:` values (BALANCE in config/schema.ts). */
export const ALGORITHMS = {
  round_robin: roundRobin,
  random,
  least_conn: leastConn,
  consistent_hash: consistentHash,
  ewma,
} satisfies Record<string, BalancerFactory>;

export type Algorithm = keyof typeof ALGORITHMS;
