// Compile-only type tests for the balancer phase of runtime-api (run by types.test.ts).
import type { AccessContext, BalancerContext, BalancerHandler, PhaseContexts } from 'scriptgate/runtime-api';

export const pickByShard: BalancerHandler = (ctx) => {
  const phase: 'balancer' = ctx.phase;
  const first = ctx.balancer.targets.find((t) => t.healthy && t.inFlight < 10);
  if (ctx.balancer.failure) ctx.log.warn('retrying', { code: ctx.balancer.failure.code, tries: ctx.balancer.tries });
  if (first) ctx.balancer.pick(first.address);
  ctx.balancer.pick('127.0.0.1:9001', 'other');
  ctx.balancer.hashKey = ctx.request.headers.get('x-user') ?? undefined;
  void phase;
};

export function forbidden(ctx: BalancerContext, access: AccessContext): void {
  // @ts-expect-error the request is read-only in balancer
  ctx.request.path = '/x';
  // @ts-expect-error balancer cannot end the request
  ctx.exit(403);
  // @ts-expect-error targets are read-only
  ctx.balancer.targets[0]!.healthy = true;
  // @ts-expect-error only balancer has ctx.balancer
  access.balancer.pick('x:1');
}

export const contexts: PhaseContexts['balancer'] | undefined = undefined;
