// access_by_script: remember the client's plan from a header, for the log phase.
import type { AccessContext } from 'scriptgate/runtime-api';

declare module 'scriptgate/runtime-api' {
  interface Vars {
    plan?: string;
  }
}

export default function access(ctx: AccessContext) {
  ctx.vars.plan = ctx.request.headers.get('x-plan') ?? 'free';
}
