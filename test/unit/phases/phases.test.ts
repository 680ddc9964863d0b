import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isProxyError } from '../../../src/errors.ts';
import type { RouteScripts } from '../../../src/phases/contract.ts';
import { config, exitJson, fixture, request, SUMMARY, type Fixture } from './fixture.ts';

const ROUTES = `  - name: all
    upstream: one
    rewrite_by_script: rewrite.ts
    access_by_script: access.ts
    header_filter_by_script: headers.ts
    body_filter_by_script: body.ts
    log_by_script: log.ts
  - name: plain
    upstream: one
  - name: only-log
    log_by_script: log.ts
  - name: forbidden
    rewrite_by_script: forbidden.ts
    access_by_script: forbidden.ts
    header_filter_by_script: forbidden.ts
    body_filter_by_script: forbidden.ts
    log_by_script: forbidden.ts
  - name: redirect
    rewrite_by_script: redirect.ts
    access_by_script: access.ts
  - name: validate
    access_by_script: validate.ts
`;

const FILES = {
  'scriptgate.yaml': config(ROUTES, 'tenants:\n  default: { cpu_ms: 1000, scripts: . }\nshared_dicts:\n  stats: { capacity: 100 }\n'),
  'rewrite.ts': `import type { RewriteContext } from "scriptgate/runtime-api";
declare module "scriptgate/runtime-api" { interface Vars { trail: string[] } }
export default function rewrite(ctx: RewriteContext) {
  ctx.vars.trail = ["rewrite:" + ctx.phase];
  if (ctx.request.path === "/exit-in-rewrite") return ctx.exit(418, { headers: { "x-a": "1", "set-cookie": ["a=1", "b=2"] }, body: "teapot" });
  if (ctx.request.path.startsWith("/api/")) ctx.request.path = ctx.request.path.slice(4);
  if (ctx.request.query === "q=choose") ctx.upstream = "two";
  ctx.request.headers.set("x-rewritten", "yes");
  ctx.log.info("rewrote", { path: ctx.request.path, route: "spoofed" });
}
`,
  'access.ts': `import type { AccessContext } from "scriptgate/runtime-api";
export default function access(ctx: AccessContext) {
  (ctx.vars.trail ??= []).push("access:" + ctx.request.path);
  const auth = ctx.request.headers.get("authorization");
  if (!auth) return ctx.exit(401, { body: "missing token\\n" });
  if (auth === "Bearer bytes") return ctx.exit(200, { body: new Uint8Array([0, 255, 10]) });
  ctx.vars.user = auth.slice(7);
  ctx.request.headers.set("x-user", String(ctx.vars.user));
  ctx.request.headers.delete("authorization");
  ctx.request.method = "post";
}
`,
  'headers.ts': `import type { HeaderFilterContext } from "scriptgate/runtime-api";
export default function headers(ctx: HeaderFilterContext) {
  ctx.vars.trail.push("header_filter:" + ctx.response.status);
  ctx.response.headers.delete("server");
  ctx.response.headers.set("x-user", String(ctx.vars.user));
  ctx.response.headers.set("x-upstream", ctx.upstream);
  if (ctx.response.status === 404) ctx.response.status = 410;
}
`,
  'body.ts': `import type { BodyFilterContext } from "scriptgate/runtime-api";
export default function body(ctx: BodyFilterContext, chunk: string, eof: boolean) {
  if (ctx.request.path === "/keep") return;
  if (ctx.request.path === "/bytes") return new Uint8Array([65, 66]);
  return chunk.toUpperCase() + (eof ? "|" + ctx.response.status + "|" + ctx.vars.trail.length : "");
}
`,
  'log.ts': `import type { LogContext } from "scriptgate/runtime-api";
export default function log(ctx: LogContext) {
  const n = ctx.shared("stats").incr("requests", 1, 0);
  ctx.log.info("done", { trail: ctx.vars.trail ?? null, status: ctx.response.status, sent: ctx.bytesSent, total: ctx.timings.total, up: ctx.upstreamAddress, n, err: ctx.error, ct: ctx.response.headers.get("content-type"), path: ctx.request.path });
}
`,
  'validate.ts': `export default function validate(ctx: any) {
  switch (ctx.request.path) {
    case "/status": ctx.exit(99); break;
    case "/redirect-status": ctx.redirect("/x", 200); break;
    case "/redirect-crlf": ctx.redirect("/x\\r\\nset-cookie: a=1"); break;
    case "/header-crlf": ctx.exit(200, { headers: { "x-a": "1\\r\\nx-b: 2" } }); break;
    case "/header-name": ctx.request.headers.set("bad name", "1"); break;
    case "/path": ctx.request.path = "no-slash"; break;
    case "/upstream": ctx.upstream = "nope"; break;
    case "/twice": ctx.exit(200); ctx.exit(201); break;
    case "/redirect-space": ctx.redirect('/a b/<c>?q="x"|{y}'); break;
    case "/cookies": ctx.exit(200, { body: JSON.stringify([ctx.request.headers.get("cookie"), ctx.request.headers.get("x-many")]) }); break;
    case "/incr-overflow": ctx.shared("stats").incr("huge", Number.MAX_VALUE, Number.MAX_VALUE); break;
  }
}
`,
  'redirect.ts': `export default function (ctx: any) { ctx.redirect("https://example.com/new", 301); }`,
  'forbidden.ts': `export default function forbidden(ctx: any, chunk?: string) {
  const what = ctx.request.headers.get("x-try");
  if (!what || what.split(":")[0] !== ctx.phase) return;
  switch (what.split(":")[1]) {
    case "exit": ctx.exit(200); break;
    case "redirect": ctx.redirect("/x"); break;
    case "response": ctx.response.status; break;
    case "path": ctx.request.path = "/other"; break;
    case "header": ctx.request.headers.set("x-a", "b"); break;
    case "status": ctx.response.status = 500; break;
    case "resheader": ctx.response.headers.set("x-a", "b"); break;
    case "upstream": ctx.upstream = "two"; break;
    case "timings": ctx.timings.total; break;
    case "caught": try { ctx.exit(200); } catch { /* swallowed: the phase fails anyway */ } break;
  }
}
`,
};

let f: Fixture;
let all: RouteScripts;
beforeAll(async () => {
  f = await fixture(FILES);
  all = f.host.route(0)!;
});
afterAll(() => f.cleanup());

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isProxyError(err)) return `${err.code} ${err.message}`;
    throw err;
  }
  return 'no error';
}

describe('routes', () => {
  it('routes without scripts cost nothing: route(i) is undefined', () => {
    expect(f.host.route(1)).toBeUndefined();
  });
  it('has tells which phases a route defines', () => {
    expect(all.has).toEqual({ rewrite: true, access: true, header_filter: true, body_filter: true, log: true, balancer: false });
    expect(f.host.route(2)!.has).toEqual({ rewrite: false, access: false, header_filter: false, body_filter: false, log: true, balancer: false });
  });
});

describe('rewrite and access', () => {
  it('change path, method and headers in one crossing and pass vars on', () => {
    const s = all.open(request(), f.logger);
    const r = s.requestPhases(request());
    expect(r).toEqual({
      action: 'continue',
      method: 'POST',
      path: '/v1/users',
      headers: ['host', 'example.com', 'accept', '*/*', 'x-rewritten', 'yes', 'x-user', 'abc'],
    });
    s.close();
  });
  it('rewrite can choose a configured upstream', () => {
    const s = all.open(request({ query: 'q=choose' }), f.logger);
    const r = s.requestPhases(request({ query: 'q=choose' }));
    expect(r.action === 'continue' && r.upstream).toBe('two');
    s.close();
  });
  it('access exit() ends the request with status, headers and body', () => {
    const req = request({ headers: [] });
    const s = all.open(req, f.logger);
    expect(s.requestPhases(req)).toEqual({ action: 'exit', status: 401, headers: [], body: 'missing token\n' });
    s.close();
  });
  it('exit() in rewrite skips access', () => {
    const req = request({ path: '/exit-in-rewrite', headers: [] });
    const s = all.open(req, f.logger);
    expect(s.requestPhases(req)).toEqual({ action: 'exit', status: 418, headers: ['x-a', '1', 'set-cookie', 'a=1', 'set-cookie', 'b=2'], body: 'teapot' });
    s.close();
  });
  it('exit() with a Uint8Array body returns those bytes', () => {
    const req = request({ headers: ['authorization', 'Bearer bytes'] });
    const s = all.open(req, f.logger);
    const r = s.requestPhases(req);
    expect(r.action).toBe('exit');
    if (r.action === 'exit') expect(Buffer.from(r.body as Uint8Array)).toEqual(Buffer.from([0, 255, 10]));
    s.close();
  });
  it('redirect() in rewrite sends location and skips access', () => {
    const rs = f.host.route(4)!;
    const s = rs.open(request({ headers: [] }), f.logger);
    expect(s.requestPhases(request({ headers: [] }))).toEqual({ action: 'exit', status: 301, headers: ['location', 'https://example.com/new'], body: '' });
    s.close();
  });
  it('ctx.log lines reach the request logger with tenant and route; scripts cannot spoof them', () => {
    const s = all.open(request(), f.logger);
    s.requestPhases(request());
    const line = f.logs.find((l) => l.msg === 'rewrote')!;
    expect(line).toMatchObject({ tenant: 'default', route: 'api', path: '/v1/users', phase: 'rewrite', level: 30 });
    s.close();
  });
});

describe('header_filter, body_filter and log', () => {
  it('run in order with vars from earlier phases; vars are freed after close', () => {
    const sandbox = f.host.sandbox('default')!;
    f.host.flush();
    const before = sandbox.liveRequests();
    const s = all.open(request(), f.logger);
    s.requestPhases(request());
    const head = s.headerFilter({ status: 404, headers: ['server', 'nginx', 'content-type', 'text/plain'] });
    expect(head).toEqual({ status: 410, headers: ['content-type', 'text/plain', 'x-user', 'abc', 'x-upstream', 'one'] });
    expect(s.bodyFilter(Buffer.from('hello '), false)!.toString()).toBe('HELLO ');
    expect(s.bodyFilter(Buffer.from('world'), true)!.toString()).toBe('WORLD|410|3');
    expect(sandbox.liveRequests()).toBe(before + 1);
    s.log(SUMMARY);
    s.close();
    s.close();
    f.host.flush();
    expect(sandbox.liveRequests()).toBe(before);
    const line = f.logs.filter((l) => l.msg === 'done').at(-1)!;
    expect(line).toMatchObject({ trail: ['rewrite:rewrite', 'access:/v1/users', 'header_filter:404'], status: 200, sent: 10, total: 5, up: '127.0.0.1:9001', err: '', ct: 'text/plain', path: '/v1/users', phase: 'log' });
  });
  it('accounts the tenant CPU from iso.cpuTime', () => {
    const [stats] = f.host.stats();
    expect(stats!.tenant).toBe('default');
    expect(stats!.cpuNs).toBeGreaterThan(0n);
    expect(stats!.calls).toBeGreaterThan(0);
  });
  it('close() without log frees the state too', () => {
    const sandbox = f.host.sandbox('default')!;
    f.host.flush();
    const before = sandbox.liveRequests();
    const s = all.open(request(), f.logger);
    s.requestPhases(request());
    expect(sandbox.liveRequests()).toBe(before + 1);
    s.close();
    f.host.flush();
    expect(sandbox.liveRequests()).toBe(before);
  });
  it('log runs for a client abort (after rewrite only) and sees the error', () => {
    const s = all.open(request(), f.logger);
    s.requestPhases(request());
    s.log({ ...SUMMARY, status: 499, error: 'PRX_ERR_CLIENT_ABORTED' });
    s.close();
    f.host.flush();
    expect(f.logs.filter((l) => l.msg === 'done').at(-1)).toMatchObject({ status: 499, err: 'PRX_ERR_CLIENT_ABORTED' });
  });
  it('log-only routes get the request without any earlier crossing; the shared dict counts across requests', () => {
    const rs = f.host.route(2)!;
    const counts: number[] = [];
    for (let i = 0; i < 3; i++) {
      const s = rs.open(request({ path: `/n${i}` }), f.logger);
      s.log(SUMMARY);
      s.close();
      f.host.flush();
      const line = f.logs.filter((l) => l.msg === 'done').at(-1)!;
      expect(line.path).toBe(`/n${i}`);
      counts.push(line.n as number);
    }
    expect(counts[1]! - counts[0]!).toBe(1);
    expect(counts[2]! - counts[1]!).toBe(1);
  });
  it('body_filter returning nothing sends the chunk unchanged; bytes are sent as given', () => {
    const keep = all.open(request({ path: '/keep' }), f.logger);
    keep.requestPhases(request({ path: '/keep' }));
    expect(keep.bodyFilter(Buffer.from('abc'), false)).toBeUndefined();
    keep.close();
    const bytes = all.open(request({ path: '/bytes' }), f.logger);
    bytes.requestPhases(request({ path: '/bytes' }));
    expect(bytes.bodyFilter(Buffer.from('abc'), true)).toEqual(Buffer.from('AB'));
    bytes.close();
  });
});

describe('exit, redirect and request changes are validated with clear errors', () => {
  const cases: Array<[string, RegExp]> = [
    ['/status', /RangeError: invalid status 99: expected an integer from 200 to 599 \(a 1xx is not a final response\)/],
    ['/redirect-status', /RangeError: invalid redirect status 200: expected 301, 302, 303, 307 or 308/],
    ['/redirect-crlf', /TypeError: invalid redirect URL .*without CR, LF/],
    ['/header-crlf', /TypeError: header x-a: value contains CR, LF/],
    ['/header-name', /TypeError: invalid header name "bad name"/],
    ['/path', /TypeError: invalid path "no-slash": must start with \//],
    ['/upstream', /TypeError: unknown upstream "nope" \(configured: one, two\)/],
    ['/twice', /Error: ctx.exit\(\)\/ctx.redirect\(\) was already called/],
  ];
  for (const [path, message] of cases) {
    it(path, () => {
      const rs = f.host.route(5)!;
      const req = request({ path });
      const s = rs.open(req, f.logger);
      const msg = code(() => s.requestPhases(req));
      s.close();
      expect(msg).toMatch(/^PRX_ERR_SCRIPT .*validate\.ts:\d+:\d+: access script threw /);
      expect(msg).toMatch(message);
    });
  }
});

describe('API edges', () => {
  it('a forbidden call the script catches still fails its phase (the docs: a call a phase may not make fails the request)', () => {
    const rs = f.host.route(3)!;
    const req = request({ headers: ['x-try', 'header_filter:caught'] });
    const s = rs.open(req, f.logger);
    s.requestPhases(req);
    const msg = code(() => s.headerFilter({ status: 200, headers: [] }));
    s.close();
    expect(msg).toMatch(/^PRX_ERR_PHASE_FORBIDDEN .*ctx\.exit\(\) is not allowed in header_filter/);
  });

  it('a redirect URL with spaces and other characters a URI may not hold is percent-encoded', () => {
    const rs = f.host.route(5)!;
    const req = request({ path: '/redirect-space' });
    const s = rs.open(req, f.logger);
    const r = s.requestPhases(req);
    s.close();
    expect(r.action === 'exit' && r.headers).toEqual(['location', '/a%20b/%3Cc%3E?q=%22x%22%7C%7By%7D']);
  });

  it('get() joins repeated Cookie headers with "; " (RFC 6265), others with ", "', () => {
    const req = request({ path: '/cookies', headers: ['host', 'a', 'cookie', 'a=1', 'cookie', 'b=2', 'x-many', '1', 'x-many', '2'] });
    expect(exitJson(f, 5, req)).toEqual(['a=1; b=2', '1, 2']);
  });

  it('incr that would overflow to Infinity throws instead of storing it', () => {
    const rs = f.host.route(5)!;
    const req = request({ path: '/incr-overflow' });
    const s = rs.open(req, f.logger);
    const msg = code(() => s.requestPhases(req));
    s.close();
    expect(msg).toMatch(/^PRX_ERR_SCRIPT .*RangeError: incr: "huge" would overflow to Infinity/);
  });
});

describe('forbidden calls throw PRX_ERR_PHASE_FORBIDDEN at run time', () => {
  const cases: Array<[string, string]> = [
    ['rewrite', 'response'],
    ['access', 'timings'],
    ['header_filter', 'exit'],
    ['header_filter', 'redirect'],
    ['header_filter', 'path'],
    ['header_filter', 'header'],
    ['header_filter', 'upstream'],
    ['body_filter', 'status'],
    ['body_filter', 'resheader'],
    ['body_filter', 'exit'],
    ['log', 'path'],
    ['log', 'exit'],
    ['log', 'status'],
  ];
  for (const [phase, what] of cases) {
    it(`${what} in ${phase}`, () => {
      const rs = f.host.route(3)!;
      const req = request({ headers: ['x-try', `${phase}:${what}`] });
      const s = rs.open(req, f.logger);
      const run = (): unknown => {
        s.requestPhases(req);
        s.headerFilter({ status: 200, headers: [] });
        s.bodyFilter(Buffer.from('x'), true);
        return undefined;
      };
      if (phase === 'log') {
        run();
        s.log(SUMMARY);
        s.close();
        f.host.flush();
        const line = f.logs.filter((l) => l.code === 'PRX_ERR_PHASE_FORBIDDEN').at(-1)!;
        expect(line.msg).toMatch(/forbidden\.ts:\d+:\d+: log script made a forbidden call: .* is not allowed in log/);
        return;
      }
      const msg = code(run);
      s.close();
      expect(msg).toMatch(new RegExp(`^PRX_ERR_PHASE_FORBIDDEN .*forbidden\\.ts:\\d+:\\d+: ${phase} script made a forbidden call: .* is not allowed in ${phase}`));
    });
  }
});
