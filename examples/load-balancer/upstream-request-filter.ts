// Pingora's `upstream_request_filter` from the load-balancer example: the origins answer 403 unless
// the Host header is one.one.one.one, so set it on the request that goes upstream.
import type { RewriteContext } from 'scriptgate/runtime-api';

export default function upstreamRequestFilter(ctx: RewriteContext) {
  ctx.request.headers.set('host', 'one.one.one.one');
}
