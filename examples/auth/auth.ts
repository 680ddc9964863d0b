// access_by_script: check `Authorization: Bearer <token>` against a fixed table. Missing or unknown
// token: 401 with WWW-Authenticate, and the upstream is never contacted. Known token: the user
// goes upstream as x-user (a client-sent x-user is replaced) and into ctx.vars for later phases.
import type { AccessContext } from 'scriptgate/runtime-api';

declare module 'scriptgate/runtime-api' {
  interface Vars {
    user: string;
  }
}

const TOKENS: Record<string, string> = {
  'token-alice': 'alice',
  'token-bob': 'bob',
};

export default function access(ctx: AccessContext) {
  const auth = ctx.request.headers.get('authorization') ?? '';
  const m = /^Bearer\s+(\S+)$/i.exec(auth);
  const user = m ? TOKENS[m[1]!] : undefined;
  if (!user) {
    return ctx.exit(401, {
      headers: { 'www-authenticate': 'Bearer realm="api"', 'content-type': 'text/plain' },
      body: m ? 'invalid token\n' : 'missing token\n',
    });
  }
  ctx.vars.user = user;
  ctx.request.headers.set('x-user', user);
  ctx.request.headers.delete('authorization');
}
