/**
 * The upstreams of every generation that is not yet disposed in this process, for the target
 * health gauge (`scriptgate_upstream_target_up`), which reads them when metrics are scraped. An
 * upstream adds itself when built and removes itself in `close()`; when an old and a new
 * generation both live, the newer one's values win.
 */
import { performance } from 'node:perf_hooks';
import { onCollectTargetHealth, targetUp } from '../observability/metrics.ts';
import type { Upstream } from './upstream.ts';

export const liveUpstreams = new Set<Upstream>();

onCollectTargetHealth(function collectTargetHealth(): void {
  targetUp.reset();
  const now = performance.now();
  for (const u of liveUpstreams) for (const t of u.targets) targetUp.set({ upstream: u.name, target: t.address }, t.health.isUp(now) ? 1 : 0);
});
