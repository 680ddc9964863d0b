// access_by_script: at most LIMIT requests per client IP in each WINDOW-second window. The first
// request of a window creates the counter with a TTL of one window (`incr(key, 1, 0, WINDOW)`:
// atomic across workers; the TTL applies only when the key is created), so old windows expire on
// their own. Over the limit: 429 with Retry-After (seconds until the window ends); the upstream is
// never contacted. Under it: the remaining count goes upstream, and back to the client through
// headers.ts (header_filter), which reads it from ctx.vars.
import type { AccessContext } from 'scriptgate/runtime-api';

const LIMIT = 5;
const WINDOW = 10; // seconds

export default function access(ctx: AccessContext) {
  const now = Date.now() / 1000;
  const window = Math.floor(now / WINDOW);
  const key = `${ctx.request.clientIp}:${window}`;
  const count = ctx.shared('ratelimit').incr(key, 1, 0, WINDOW) ?? LIMIT + 1; // undefined: dict full
  if (count > LIMIT) {
    const retryAfter = Math.max(1, Math.ceil((window + 1) * WINDOW - now));
    return ctx.exit(429, {
      headers: { 'retry-after': String(retryAfter), 'content-type': 'text/plain' },
      body: `rate limit of ${LIMIT} requests per ${WINDOW} s exceeded; retry in ${retryAfter} s\n`,
    });
  }
  ctx.vars.rate = { limit: LIMIT, remaining: LIMIT - count };
  ctx.request.headers.set('x-ratelimit-remaining', String(LIMIT - count));
}
