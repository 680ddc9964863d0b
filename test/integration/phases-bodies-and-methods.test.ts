/**
 * body_filter and request-method changes against what real origins send: a body that is not
 * UTF-8 survives a filter that hands the chunk back, body_filter routes ask the origin for an
 * uncompressed body (and leave a compressed one alone), a rewrite that turns a GET into a HEAD
 * answers the client with an empty body that keeps the connection in step, and CONNECT cannot be set.
 */
import { gzipSync, gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { rawRequest, request, startOrigin, startProxy, statusOf, type Origin } from '../helpers/servers.ts';
import { captureLogs } from '../helpers/log-capture.ts';

function config(origin: Origin, route: string): string {
  return `listen:\n  - address: 127.0.0.1:0\nlog: { level: silent }\nupstreams:\n  up:\n    targets: ["${origin.address}"]\nroutes:\n  - name: r\n    upstream: up\n${route}`;
}

const BINARY = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0xff, 0xfe, 0x00, 0xc3, 0x28, 0x80]);

describe('body_filter and the bytes it is given', () => {
  it('a filter that hands the chunk back unchanged passes a body that is not UTF-8 byte for byte', async () => {
    const origin = await startOrigin((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(BINARY);
    });
    const { port } = await startProxy(config(origin, '    body_filter_by_script: bf.ts\n'), {
      'bf.ts': 'export default function (ctx: any, chunk: string) { ctx.vars.seen = (ctx.vars.seen ?? 0) + chunk.length; return chunk; }',
    });
    const res = await request(port, { path: '/bin' });
    expect(res.status).toBe(200);
    expect(res.body.equals(BINARY)).toBe(true);
  });

  it("on a body_filter route the client's Accept-Encoding does not go upstream (one a script sets does); other routes pass it", async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(
      config(origin, '    match: { path_prefix: /f/ }\n    rewrite_by_script: rw.ts\n    body_filter_by_script: bf.ts\n  - name: plain\n    upstream: up\n'),
      {
        'rw.ts': 'export default function (ctx: any) { if (ctx.request.headers.has("x-own")) ctx.request.headers.set("accept-encoding", "br"); }',
        'bf.ts': 'export default function (ctx: any, chunk: string) { return chunk.toUpperCase(); }',
      },
    );
    await request(port, { path: '/f/a', headers: { 'accept-encoding': 'gzip, br' } });
    await request(port, { path: '/f/b', headers: { 'accept-encoding': 'gzip', 'x-own': '1' } });
    await request(port, { path: '/plain', headers: { 'accept-encoding': 'gzip' } });
    expect(origin.seen.map((s) => s.headers['accept-encoding'])).toEqual([undefined, 'br', 'gzip']);
  });

  it('a compressed body an origin sends anyway passes through body_filter untouched, with its Content-Encoding', async () => {
    const zipped = gzipSync('hello compressed world\n');
    const origin = await startOrigin((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip', 'content-length': String(zipped.length) });
      res.end(zipped);
    });
    const { port } = await startProxy(config(origin, '    body_filter_by_script: bf.ts\n'), {
      'bf.ts': 'export default function (ctx: any, chunk: string) { return chunk.toUpperCase(); }',
    });
    const res = await request(port, { path: '/z', headers: { 'accept-encoding': 'gzip' } });
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(res.body).toString()).toBe('hello compressed world\n');
  });
});

describe("the route's filters see the responses the proxy makes itself, as OpenResty's see ngx.exit and error pages", () => {
  it('header_filter adds its header to an exit (401), a redirect and a 502; body_filter rewrites an exit body; a script failure is not filtered again', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(
      config(origin, '    access_by_script: ac.ts\n    header_filter_by_script: hf.ts\n    body_filter_by_script: bf.ts\n  - name: dead\n    match: { path_prefix: /dead/ }\n    upstream: dead\n    header_filter_by_script: hf.ts\n').replace('upstreams:\n', 'upstreams:\n  dead:\n    targets: ["127.0.0.1:1"]\n'),
      {
        'ac.ts': `export default function (ctx: any) {
          if (ctx.request.path === "/private") return ctx.exit(401, { headers: { "www-authenticate": "Bearer" }, body: "no token\\n" });
          if (ctx.request.path === "/moved") return ctx.redirect("/new", 301);
          if (ctx.request.path === "/boom") return ctx.exit(403);
        }`,
        'hf.ts': `export default function (ctx: any) {
          if (ctx.request.path === "/boom") throw new Error("filter broke");
          ctx.response.headers.set("access-control-allow-origin", "*");
          ctx.response.headers.set("x-filtered-status", String(ctx.response.status));
        }`,
        'bf.ts': 'export default function (ctx: any, chunk: string) { return chunk.toUpperCase(); }',
      },
    );
    const denied = await request(port, { path: '/private' });
    expect(denied.status).toBe(401);
    expect(denied.headers['access-control-allow-origin']).toBe('*');
    expect(denied.headers['x-filtered-status']).toBe('401');
    expect(denied.headers['www-authenticate']).toBe('Bearer');
    expect(denied.text).toBe('NO TOKEN\n');
    const moved = await request(port, { path: '/moved' });
    expect(moved.status).toBe(301);
    expect(moved.headers.location).toBe('/new');
    expect(moved.headers['access-control-allow-origin']).toBe('*');
    const dead = await request(port, { path: '/dead/x' });
    expect(dead.status).toBe(502);
    expect(dead.headers['x-filtered-status']).toBe('502');
    // header_filter fails on the exit's response: a 500, which is not filtered again
    const boom = await request(port, { path: '/boom' });
    expect(boom.status).toBe(500);
    expect(boom.headers['x-filtered-status']).toBeUndefined();
    const ok = await request(port, { path: '/fine' });
    expect(ok.headers['x-filtered-status']).toBe('200');
    expect(ok.text).toBe(ok.text.toUpperCase());
  });
});

describe('what is counted as sent', () => {
  it('a body a header_filter made bodiless (204) is not counted in the access log or the log phase', async () => {
    const origin = await startOrigin((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '398' });
      res.end('x'.repeat(398));
    });
    const logs = captureLogs();
    const { port } = await startProxy(
      config(origin, '    header_filter_by_script: hf.ts\n    log_by_script: log.ts\n').replace('log: { level: silent }', 'log: { level: info, access_log: { fields: [path, status, bytes] } }'),
      {
        'hf.ts': 'export default function (ctx: any) { ctx.response.status = 204; }',
        'log.ts': 'export default function (ctx: any) { ctx.log.info("sent", { bytes: ctx.bytesSent }); }',
      },
      logs.logger,
    );
    const res = await request(port, { path: '/n' });
    expect(res.status).toBe(204);
    expect(res.body.length).toBe(0);
    expect((await logs.waitFor((l) => l.msg === 'access' && l.path === '/n')).bytes).toBe(0);
    expect((await logs.waitFor((l) => l.msg === 'sent')).bytes).toBe(0);
  });
});

describe('request methods a script sets', () => {
  it('a GET a rewrite turned into a HEAD gets an empty body with Content-Length 0, and the next request on the connection is answered in step', async () => {
    const origin = await startOrigin((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '11' });
      res.end(req.method === 'HEAD' ? undefined : 'full body\n!');
    });
    const { port } = await startProxy(config(origin, '    rewrite_by_script: rw.ts\n'), {
      'rw.ts': 'export default function (ctx: any) { if (ctx.request.path === "/probe") ctx.request.method = "HEAD"; }',
    });
    const raw = await rawRequest(port, 'GET /probe HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    const answers = raw.text.split(/(?=HTTP\/1\.1 )/);
    expect(answers).toHaveLength(2);
    expect(statusOf(answers[0]!)).toBe(200);
    expect(answers[0]).toMatch(/\r\ncontent-length: 0\r\n/i);
    expect(answers[0]!.endsWith('\r\n\r\n')).toBe(true);
    expect(answers[1]!.endsWith('\r\n\r\nfull body\n!')).toBe(true);
    expect(origin.seen.map((s) => s.method)).toEqual(['HEAD', 'GET']);
  });

  it("ctx.exit(444) closes the connection without a response, as nginx's 444", async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(config(origin, '    access_by_script: ac.ts\n'), {
      'ac.ts': 'export default function (ctx: any) { if (ctx.request.path === "/drop") ctx.exit(444); }',
    });
    const raw = await rawRequest(port, 'GET /drop HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(raw.timedOut).toBe(false);
    expect(raw.text).toBe('');
    expect(origin.seen).toHaveLength(0);
    expect((await request(port, { path: '/fine' })).status).toBe(200);
  });

  it('setting the method to CONNECT is refused at the script (500), nothing reaches the origin', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(config(origin, '    rewrite_by_script: rw.ts\n'), {
      'rw.ts': 'export default function (ctx: any) { ctx.request.method = "connect"; }',
    });
    expect((await request(port, { path: '/c' })).status).toBe(500);
    expect(origin.seen).toHaveLength(0);
  });
});
