// header_filter: add a response header, like lua.conf's header_filter_by_lua_block.
import type { HeaderFilterContext } from 'scriptgate/runtime-api';

export default function headerFilter(ctx: HeaderFilterContext) {
  ctx.response.headers.set('x-proxy', 'scriptgate');
}
