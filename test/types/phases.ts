// Compile-only type tests for runtime-api: each phase's context offers only what the phase may do.
// Run by types.test.ts with `tsc -p test/types`; every @ts-expect-error line must be an error.
import type {
  AccessContext,
  AccessHandler,
  BodyFilterContext,
  BodyFilterHandler,
  HeaderFilterContext,
  HeaderFilterHandler,
  LogContext,
  LogHandler,
  RewriteContext,
  RewriteHandler,
  SharedDict,
  Timings,
} from 'scriptgate/runtime-api';

declare module 'scriptgate/runtime-api' {
  interface Vars {
    user: string;
    hits: number;
  }
}

function expectType<T>(_value: T): void {}

export const rewrite: RewriteHandler = (ctx) => {
  ctx.request.path = '/v2' + ctx.request.path;
  ctx.request.query = 'a=1';
  ctx.request.method = 'POST';
  ctx.request.headers.set('x-a', 'b');
  ctx.request.headers.append('x-a', 1);
  ctx.request.headers.delete('x-b');
  ctx.upstream = 'two';
  expectType<string | null>(ctx.request.headers.get('host'));
  expectType<'rewrite'>(ctx.phase);
  // @ts-expect-error the response does not exist yet
  ctx.response;
  // @ts-expect-error clientIp is read-only
  ctx.request.clientIp = '1.2.3.4';
  expectType<string | undefined>(ctx.request.tls?.clientCertificate?.subject);
  expectType<string | undefined>(ctx.request.tls?.serverName);
  expectType<unknown>(ctx.request.body?.json());
  expectType<number | undefined>(ctx.request.body?.length);
  ctx.request.setBody(JSON.stringify({ redacted: true }));
  ctx.request.setBody(new Uint8Array([1, 2]));
  // @ts-expect-error a body is a string or bytes
  ctx.request.setBody({ a: 1 });
  // @ts-expect-error the TLS facts are read-only
  ctx.request.tls = null;
  // @ts-expect-error timings are a log-phase view
  ctx.timings;
  // @ts-expect-error redirect status must be a redirect code
  ctx.redirect('/x', 200);
  return ctx.exit(404, { body: 'gone', headers: { 'x-a': ['1', '2'] } });
};

export const access: AccessHandler = (ctx: AccessContext) => {
  ctx.vars.user = 'alice';
  expectType<string>(ctx.vars.user);
  expectType<number>(ctx.vars.hits);
  // @ts-expect-error Vars.user is a string
  ctx.vars.user = 42;
  // Undeclared fields are untyped, as ngx.ctx (DESIGN.md's example passes one to headers.set).
  ctx.vars.tier = 'gold';
  ctx.request.headers.set('x-tier', ctx.vars.tier);
  const auth = ctx.request.headers.get('authorization');
  if (!auth) return ctx.exit(401, { body: new Uint8Array([1]) });
  ctx.redirect('https://example.com/', 308);
  ctx.log.info('ok', { user: ctx.vars.user });
  expectType<string>(ctx.crypto.createHmac('sha256', 'secret').update('a').update(new Uint8Array([1])).digest('base64url'));
  expectType<Uint8Array>(ctx.crypto.createHash('SHA-256').digest());
  expectType<boolean>(ctx.crypto.timingSafeEqual('a', new Uint8Array([97])));
  expectType<string | undefined>(ctx.env.ANY_NAME);
  // @ts-expect-error the env is read-only
  ctx.env.REGION = 'x';
  expectType<string>(ctx.crypto.randomUUID());
  // @ts-expect-error digests are hex, base64, base64url or latin1
  ctx.crypto.createHash('sha1').digest('utf8');
  const dict: SharedDict = ctx.shared('stats');
  expectType<number | undefined>(dict.incr('n', 1, 0, 10));
  // @ts-expect-error shared values are primitives
  dict.set('k', { a: 1 });
};

export const headerFilter: HeaderFilterHandler = (ctx: HeaderFilterContext) => {
  ctx.response.status = 410;
  ctx.response.headers.set('x-proxy', 'sg');
  ctx.response.headers.delete('server');
  expectType<string>(ctx.request.path);
  // @ts-expect-error no exit after the upstream answered
  ctx.exit(500);
  // @ts-expect-error no redirect either
  ctx.redirect('/x');
  // @ts-expect-error the request is read-only here
  ctx.request.path = '/other';
  // @ts-expect-error request headers are read-only here
  ctx.request.headers.set('x-a', 'b');
  // @ts-expect-error the request body already went upstream
  ctx.request.setBody('x');
  // @ts-expect-error the upstream is already chosen
  ctx.upstream = 'two';
};

export const bodyFilter: BodyFilterHandler = (ctx: BodyFilterContext, chunk, eof) => {
  expectType<string>(chunk);
  expectType<boolean>(eof);
  expectType<number>(ctx.response.status);
  // @ts-expect-error the response head is already sent
  ctx.response.status = 500;
  // @ts-expect-error response headers are read-only here
  ctx.response.headers.set('x-a', 'b');
  // @ts-expect-error no exit in body_filter
  ctx.exit(200);
  if (eof) return new Uint8Array([0x0a]);
  return chunk.toUpperCase();
};

// @ts-expect-error body_filter returns a string, bytes or nothing
export const badBody: BodyFilterHandler = () => 42;

export const log: LogHandler = (ctx: LogContext) => {
  expectType<Timings>(ctx.timings);
  expectType<number>(ctx.timings.upstreamConnect);
  expectType<number>(ctx.bytesSent);
  expectType<string>(ctx.upstreamAddress);
  expectType<string>(ctx.vars.user);
  ctx.log.info('done', { status: ctx.response.status });
  // @ts-expect-error log cannot end the request
  ctx.exit(500);
  // @ts-expect-error the request is read-only in log
  ctx.request.path = '/x';
  // @ts-expect-error the response is read-only in log
  ctx.response.status = 200;
};

// @ts-expect-error contexts are interfaces created by scriptgate: scripts cannot construct them
new RewriteContext();
