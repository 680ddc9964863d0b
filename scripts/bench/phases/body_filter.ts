// body_filter: uppercase every chunk, like lua.conf's body_filter_by_lua_block.
import type { BodyFilterContext } from 'scriptgate/runtime-api';

export default function bodyFilter(ctx: BodyFilterContext, chunk: string, eof: boolean) {
  return chunk.toUpperCase();
}
