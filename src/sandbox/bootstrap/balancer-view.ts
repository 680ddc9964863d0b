/**
 * Runs inside the isolate: `ctx.balancer`, what a balancer_by_script sees (Pingora's
 * `upstream_peer`, OpenResty's `balancer_by_lua`). Built from the host's balancer record for one
 * call of the phase and dropped after it; the script reads the upstream's targets (with health and
 * load) and the previous try's failure, and may `pick()` a target (optionally of another
 * configured upstream) or set `hashKey` for consistent_hash. Leaving both alone keeps the
 * upstream's own algorithm. The host checks the choice against its real targets.
 */
import type { Balancer, BalancerFailure, BalancerTarget } from '../../../runtime-api/index.d.ts';
import { allow, BALANCER } from './phase-guard.ts';

const MAX_KEY = 1024;

/** `ctx.balancer` (its type is runtime-api's `Balancer`). */
export class BalancerView implements Balancer {
  readonly upstream: string;
  readonly tries: number;
  readonly failure: BalancerFailure | null;
  readonly targets: readonly BalancerTarget[];
  /** The choice, read by the bootstrap after the script returned. */
  chosenUpstream: string | undefined;
  chosenAddress: string | undefined;
  chosenKey: string | undefined;
  readonly #upstreams: ReadonlySet<string>;

  constructor(record: string, upstreams: ReadonlySet<string>) {
    const f = record.split('\n');
    this.upstream = f[0]!;
    this.tries = Number(f[1]);
    this.failure = f[2] ? Object.freeze({ code: f[2], address: f[3]! }) : null;
    const targets: BalancerTarget[] = [];
    for (let i = 4; i + 3 < f.length; i += 4) targets.push(Object.freeze({ address: f[i]!, healthy: f[i + 1] === '1', inFlight: Number(f[i + 2]), weight: Number(f[i + 3]) }));
    this.targets = Object.freeze(targets);
    this.#upstreams = upstreams;
  }

  /** Sends this try to `address` (a target of `upstream`, default the current one). */
  pick(address: string, upstream?: string): void {
    allow(BALANCER, 'ctx.balancer.pick()');
    if (typeof address !== 'string' || address.length === 0 || address.length > 300) throw new TypeError('ctx.balancer.pick(): address must be a non-empty string like "127.0.0.1:9001"');
    if (upstream !== undefined && (typeof upstream !== 'string' || !this.#upstreams.has(upstream))) {
      throw new TypeError(`ctx.balancer.pick(): unknown upstream ${JSON.stringify(upstream)} (configured: ${[...this.#upstreams].join(', ') || 'none'})`);
    }
    this.chosenAddress = address;
    this.chosenUpstream = upstream;
  }

  get hashKey(): string | undefined {
    return this.chosenKey;
  }
  /** Key for the upstream's consistent_hash (ignored by other algorithms); undefined = the upstream's own `hash_key`. */
  set hashKey(key: string | undefined) {
    allow(BALANCER, 'setting ctx.balancer.hashKey');
    if (key !== undefined && (typeof key !== 'string' || key.length > MAX_KEY)) throw new TypeError(`ctx.balancer.hashKey must be a string of at most ${MAX_KEY} characters, or undefined`);
    this.chosenKey = key;
  }
}

let current: BalancerView | null = null;

/** The view of the balancer call in progress. */
export function currentBalancer(): BalancerView {
  if (!current) throw new Error('ctx.balancer is only available while balancer_by_script runs');
  return current;
}

export function setBalancer(view: BalancerView | null): void {
  current = view;
}
