// log_by_script: a structured access-log line of our own, with timings and a field set in access.
// Runs after the client has the whole response, so it never delays it.
import type { LogContext } from 'scriptgate/runtime-api';

export default function log(ctx: LogContext) {
  ctx.log.info('request done', {
    method: ctx.request.method,
    path: ctx.request.path,
    status: ctx.response.status,
    bytes: ctx.bytesSent,
    totalMs: Math.round(ctx.timings.total * 100) / 100,
    upstreamMs: Math.round(ctx.timings.upstreamHeader * 100) / 100,
    upstream: ctx.upstreamAddress,
    plan: ctx.vars.plan,
    slow: ctx.timings.total > 500,
  });
}
