/**
 * Health of one target, from two sources. Active: probe results (health-check.ts) flip the target
 * down after `unhealthy_threshold` consecutive failures and up again after `healthy_threshold`
 * consecutive successes; a target starts up. Passive: real requests that fail to connect, time out
 * or break count as failures; after `passive.max_fails` in a row the target is ejected for
 * `passive.cooldown`, then gets traffic again on probation (one more failure ejects it again, a
 * success clears the count). `max_fails: 0` turns passive ejection off.
 */

export interface HealthPolicy {
  healthyThreshold: number;
  unhealthyThreshold: number;
  maxFails: number;
  cooldownMs: number;
}

export class TargetHealth {
  readonly #policy: HealthPolicy;
  /** Verdict of the active checks (true when there are none). */
  activeUp = true;
  #okRun = 0;
  #failRun = 0;
  /** Consecutive passive failures. */
  passiveFails = 0;
  /** performance.now() until which the target is ejected; 0 = not ejected. */
  ejectedUntil = 0;
  /** Last probe's error, '' when it passed or none ran. */
  lastProbeError = '';

  constructor(policy: HealthPolicy) {
    this.#policy = policy;
  }

  /**
   * Takes over `prev`'s verdicts (the same target in the generation a reload replaces), so a target
   * that was down stays down until its checks pass again, and an ejection runs its course.
   */
  adopt(prev: TargetHealth): void {
    this.activeUp = prev.activeUp;
    this.#okRun = prev.#okRun;
    this.#failRun = prev.#failRun;
    this.passiveFails = prev.passiveFails;
    this.ejectedUntil = prev.ejectedUntil;
    this.lastProbeError = prev.lastProbeError;
  }

  /** True when the target may get traffic now. */
  isUp(now: number): boolean {
    return this.activeUp && now >= this.ejectedUntil;
  }

  /** Records one active probe; returns true when the active verdict changed. */
  probe(ok: boolean, error = ''): boolean {
    this.lastProbeError = ok ? '' : error;
    if (ok) {
      this.#failRun = 0;
      if (!this.activeUp && ++this.#okRun >= this.#policy.healthyThreshold) {
        this.activeUp = true;
        this.#okRun = 0;
        this.passiveFails = 0;
        this.ejectedUntil = 0;
        return true;
      }
      return false;
    }
    this.#okRun = 0;
    if (this.activeUp && ++this.#failRun >= this.#policy.unhealthyThreshold) {
      this.activeUp = false;
      this.#failRun = 0;
      return true;
    }
    return false;
  }

  /** A real request to the target failed; returns true when this ejected it. */
  passiveFailure(now: number): boolean {
    if (this.#policy.maxFails <= 0) return false;
    if (++this.passiveFails < this.#policy.maxFails) return false;
    this.ejectedUntil = now + this.#policy.cooldownMs;
    // Probation after the cool-down: the next failure ejects it again.
    this.passiveFails = this.#policy.maxFails - 1;
    return true;
  }

  /** A real request got a response head from the target. */
  passiveSuccess(): void {
    this.passiveFails = 0;
  }
}
