import type { AccessContext } from 'scriptgate/runtime-api';

/** Tags the request; the debug line carries the request's reqId, so it joins the access line. */
export default function access(ctx: AccessContext) {
  ctx.request.headers.set('x-edge', '1');
  ctx.log.debug('tagged', { path: ctx.request.path });
}
