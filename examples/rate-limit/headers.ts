// header_filter_by_script: the client learns where it stands, as Kong's and GitHub's APIs tell it
// (X-RateLimit-Limit / X-RateLimit-Remaining), from what limit.ts left in ctx.vars.
import type { HeaderFilterContext } from 'scriptgate/runtime-api';

export default function headers(ctx: HeaderFilterContext) {
  const rate = ctx.vars.rate as { limit: number; remaining: number } | undefined;
  if (!rate) return;
  ctx.response.headers.set('x-ratelimit-limit', rate.limit);
  ctx.response.headers.set('x-ratelimit-remaining', rate.remaining);
}
