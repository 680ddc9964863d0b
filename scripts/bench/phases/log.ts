// log: count requests in a shared dict (all workers), like lua.conf's log_by_lua_block.
import type { LogContext } from 'scriptgate/runtime-api';

export default function log(ctx: LogContext) {
  ctx.shared('stats').incr('requests', 1, 0);
}
