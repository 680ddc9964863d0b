// access_by_script: verify GitHub's webhook signature, `X-Hub-Signature-256: sha256=<hex HMAC of
// the body>`, in constant time. A missing or wrong signature (a forged or altered delivery) gets
// 401 and never reaches the upstream; a good one goes on with `x-webhook-verified: 1`.
import type { AccessContext } from 'scriptgate/runtime-api';

declare module 'scriptgate/runtime-api' {
  interface Env {
    /** The webhook's secret, as set in the repository's webhook settings (tenants.default.env). */
    WEBHOOK_SECRET: string;
  }
}

export default function access(ctx: AccessContext) {
  const got = ctx.request.headers.get('x-hub-signature-256');
  if (!got) return ctx.exit(401, { body: 'missing X-Hub-Signature-256\n' });
  const body = ctx.request.body?.bytes() ?? new Uint8Array(0);
  const want = 'sha256=' + ctx.crypto.createHmac('sha256', ctx.env.WEBHOOK_SECRET).update(body).digest('hex');
  if (!ctx.crypto.timingSafeEqual(want, got)) {
    ctx.log.warn('webhook signature mismatch', { event: ctx.request.headers.get('x-github-event'), bytes: body.length });
    return ctx.exit(401, { body: 'bad signature\n' });
  }
  ctx.request.headers.set('x-webhook-verified', '1');
}
