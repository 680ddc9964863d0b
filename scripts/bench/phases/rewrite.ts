// rewrite: strip the /api prefix (/api/small -> /small), like lua.conf's rewrite_by_lua_block.
import type { RewriteContext } from 'scriptgate/runtime-api';

export default function rewrite(ctx: RewriteContext) {
  ctx.request.path = ctx.request.path.slice(4);
}
