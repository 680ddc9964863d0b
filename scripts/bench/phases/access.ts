// access: answer 403 when an x-block request header is present, like lua.conf's access_by_lua_block.
import type { AccessContext } from 'scriptgate/runtime-api';

export default function access(ctx: AccessContext) {
  if (ctx.request.headers.has('x-block')) return ctx.exit(403);
}
