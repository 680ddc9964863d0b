/**
 * Phase-script semantics end to end: a real client, the proxy, real isolates and esbuild, and a
 * recording origin. Every script lives in the test's temp config folder (the default tenant).
 */
import { createHash, createHmac } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { captureLogs } from '../helpers/log-capture.ts';
import { request, startOrigin, startProxy, type Origin } from '../helpers/servers.ts';

const TS = 'import type * as api from "scriptgate/runtime-api";\n';

function config(origins: Origin[], route: string, extra = ''): string {
  return `listen:\n  - address: 127.0.0.1:0\nlog: { level: info, access_log: false }\n${extra}upstreams:\n  up:\n    targets: [${origins
    .map((o) => `"${o.address}"`)
    .join(', ')}]\nroutes:\n  - name: r\n    upstream: up\n${route}`;
}

/** Sends a body in pieces (Transfer-Encoding: chunked, no Content-Length); resolves the status. */
function sendChunked(port: number, method: string, path: string, pieces: string[]): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port, method, path, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    r.on('error', reject);
    for (const p of pieces.slice(0, -1)) r.write(p);
    r.end(pieces.at(-1));
  });
}

describe('rewrite and access', () => {
  it('rewrite changes method, path, query and headers going upstream; access sees the changes', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(
      config([origin], '    rewrite_by_script: rewrite.ts\n    access_by_script: access.ts\n'),
      {
        'rewrite.ts': `${TS}export default function (ctx: api.RewriteContext) {
          ctx.request.method = 'POST';
          ctx.request.path = '/v2' + ctx.request.path;
          ctx.request.query = 'a=1&' + ctx.request.query;
          ctx.request.headers.set('x-rewritten', 'yes');
          ctx.request.headers.delete('x-secret');
          ctx.vars.seen = ctx.request.path;
        }`,
        'access.ts': `${TS}export default function (ctx: api.AccessContext) {
          ctx.request.headers.set('x-access-saw', String(ctx.vars.seen) + ' ' + ctx.request.method);
        }`,
      },
    );
    const res = await request(port, { path: '/items?b=2', headers: { 'x-secret': 's' } });
    expect(res.status).toBe(200);
    const seen = origin.seen[0]!;
    expect(seen.method).toBe('POST');
    expect(seen.url).toBe('/v2/items?a=1&b=2');
    expect(seen.headers['x-rewritten']).toBe('yes');
    expect(seen.headers['x-secret']).toBeUndefined();
    expect(seen.headers['x-access-saw']).toBe('/v2/items POST');
  });

  it('over plain HTTP ctx.request.tls is null and ctx.connection says no TLS', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(config([origin], '    access_by_script: tls.ts\n'), {
      'tls.ts': `${TS}export default function (ctx: api.AccessContext) { ctx.exit(200, { body: JSON.stringify({ tls: ctx.request.tls }) }); }`,
    });
    expect(JSON.parse((await request(port)).text)).toEqual({ tls: null });
  });

  it('scripts have URL, URLSearchParams, atob, btoa, TextEncoder and TextDecoder (a Basic-auth check and a query parameter)', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(config([origin], '    access_by_script: web.ts\n'), {
      'web.ts': `${TS}export default function (ctx: api.AccessContext) {
        const auth = ctx.request.headers.get('authorization') ?? '';
        const [user, pass] = atob(auth.slice(6)).split(':');
        if (user !== 'ann' || pass !== 'pw') return ctx.exit(401, { headers: { 'www-authenticate': 'Basic realm="x"' } });
        const q = new URLSearchParams(ctx.request.query);
        const u = new URL(ctx.request.url, 'https://' + ctx.request.headers.get('host'));
        const utf8 = new TextEncoder().encode(q.get('name') ?? '');
        // WHATWG TextDecoder options, as in workerd: fatal rejects bad UTF-8, stream joins split sequences.
        let fatal = 'accepted';
        try { new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array([0x4a, 0xc3])); } catch (e) { fatal = (e as Error).name; }
        const d = new TextDecoder();
        const streamed = d.decode(utf8.subarray(0, 2), { stream: true }) + d.decode(utf8.subarray(2));
        ctx.exit(200, { body: JSON.stringify({ ids: q.getAll('id'), name: q.get('name'), path: u.pathname, host: u.hostname, token: btoa(user + ':' + pass), bytes: utf8.length, back: new TextDecoder().decode(utf8), fatal, streamed, into: new TextEncoder().encodeInto('€x', new Uint8Array(3)) }) });
      }`,
    });
    expect((await request(port, { headers: { authorization: `Basic ${Buffer.from('ann:bad').toString('base64')}` } })).status).toBe(401);
    const ok = await request(port, { path: '/a/../b?id=1&id=2&name=J%C3%BCrgen+X', host: 'Shop.Example', headers: { authorization: `Basic ${Buffer.from('ann:pw').toString('base64')}` } });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.text)).toEqual({ ids: ['1', '2'], name: 'Jürgen X', path: '/b', host: 'shop.example', token: Buffer.from('ann:pw').toString('base64'), bytes: 9, back: 'Jürgen X', fatal: 'TypeError', streamed: 'Jürgen X', into: { read: 1, written: 3 } });
  });

  it('ctx.crypto: access checks a GitHub-style webhook HMAC over the body and a JWT HS256; random bytes and UUIDs come from the host', async () => {
    const origin = await startOrigin();
    const secret = 'It’s a Secret to Everybody';
    const { port } = await startProxy(config([origin], '    script_body: 64kb\n    access_by_script: access.ts\n    header_filter_by_script: headers.ts\n'), {
      'access.ts': `${TS}const SECRET = ${JSON.stringify(secret)};
        export default function (ctx: api.AccessContext) {
          const c = ctx.crypto;
          if (ctx.request.path === '/hook') {
            const body = ctx.request.body?.bytes() ?? new Uint8Array(0);
            const want = 'sha256=' + c.createHmac('sha256', SECRET).update(body).digest('hex');
            if (!c.timingSafeEqual(want, ctx.request.headers.get('x-hub-signature-256') ?? '')) return ctx.exit(401, { body: 'bad signature' });
            ctx.request.headers.set('x-body-sha1', c.createHash('SHA-1').update(body).digest('base64'));
            return;
          }
          const [h, p, sig] = (ctx.request.headers.get('authorization') ?? '').replace(/^Bearer /, '').split('.');
          const want = c.createHmac('sha256', SECRET).update(h + '.' + p).digest('base64url');
          if (!sig || !c.timingSafeEqual(want, sig)) return ctx.exit(401, { body: 'bad token' });
          const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(p!.replace(/-/g, '+').replace(/_/g, '/')), (ch) => ch.charCodeAt(0))));
          ctx.request.headers.set('x-user', claims.sub);
          const h2 = c.createHash('sha512');
          h2.update('a');
          h2.update(new Uint8Array([98]));
          ctx.request.headers.set('x-sha512-ab', h2.digest('hex'));
          ctx.request.headers.set('x-md5', c.createHash('md5').update('').digest('hex'));
          try { h2.digest(); } catch (e) { ctx.request.headers.set('x-twice', String((e as Error).message)); }
          try { c.createHash('whirlpool'); } catch (e) { ctx.request.headers.set('x-unsupported', String((e as Error).message)); }
        }`,
      'headers.ts': `${TS}export default function (ctx: api.HeaderFilterContext) {
          const nonce = ctx.crypto.randomBytes(16);
          ctx.response.headers.set('content-security-policy', "script-src 'nonce-" + btoa(String.fromCharCode(...nonce)) + "'");
          ctx.response.headers.set('x-uuid', crypto.randomUUID());
          const u32 = crypto.getRandomValues(new Uint32Array(4));
          ctx.response.headers.set('x-random', Array.from(u32).join(','));
        }`,
    });
    const payload = JSON.stringify({ action: 'opened', who: 'Jürgen' });
    const sig = `sha256=${createHmac('sha256', secret).update(payload).digest('hex')}`;
    const hook = await request(port, { method: 'POST', path: '/hook', body: payload, headers: { 'x-hub-signature-256': sig } });
    expect(hook.status).toBe(200);
    expect(origin.seen.at(-1)!.headers['x-body-sha1']).toBe(createHash('sha1').update(payload).digest('base64'));
    const forged = await request(port, { method: 'POST', path: '/hook', body: payload + ' ', headers: { 'x-hub-signature-256': sig } });
    expect([forged.status, forged.text]).toEqual([401, 'bad signature']);

    const b64u = (s: string) => Buffer.from(s).toString('base64url');
    const unsigned = `${b64u('{"alg":"HS256","typ":"JWT"}')}.${b64u('{"sub":"ann-ü"}')}`;
    const jwt = `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
    const ok = await request(port, { path: '/api', headers: { authorization: `Bearer ${jwt}` } });
    expect(ok.status).toBe(200);
    const seen = origin.seen.at(-1)!.headers;
    expect(seen['x-user']).toBe('ann-ü');
    expect(seen['x-sha512-ab']).toBe(createHash('sha512').update('ab').digest('hex'));
    expect(seen['x-md5']).toBe('d41d8cd98f00b204e9800998ecf8427e');
    expect(seen['x-twice']).toMatch(/digest\(\) was already called/);
    expect(seen['x-unsupported']).toMatch(/unsupported hash "whirlpool"/);
    expect((await request(port, { path: '/api', headers: { authorization: `Bearer ${jwt.slice(0, -2)}xx` } })).status).toBe(401);

    const nonces = new Set<string>();
    for (const r of [ok, hook, await request(port, { path: '/api', headers: { authorization: `Bearer ${jwt}` } })]) {
      const csp = String(r.headers['content-security-policy']);
      expect(csp).toMatch(/^script-src 'nonce-[A-Za-z0-9+/]{22}=='$/);
      nonces.add(csp);
      expect(r.headers['x-uuid']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(String(r.headers['x-random']).split(',')).toHaveLength(4);
    }
    expect(nonces.size).toBe(3);
  });

  it('ctx.env: the tenant env from the config (a { from_env } value from the environment), frozen, the same in every phase', async () => {
    const origin = await startOrigin();
    process.env.SG_PHASES_TEST_TOKEN = 'from-the-environment';
    onTestFinished(() => {
      delete process.env.SG_PHASES_TEST_TOKEN;
    });
    const tenants = 'tenants:\n  default:\n    env:\n      REGION: eu-1\n      TOKEN: { from_env: SG_PHASES_TEST_TOKEN }\n';
    const { port } = await startProxy(config([origin], '    access_by_script: access.ts\n    header_filter_by_script: headers.ts\n', tenants), {
      'access.ts': `${TS}export default function (ctx: api.AccessContext) {
          // A write does nothing (it throws in strict-mode code): the env is frozen.
          try { (ctx.env as Record<string, string>).REGION = 'us'; } catch { /* strict mode */ }
          const frozen = Object.isFrozen(ctx.env) && ctx.env.REGION === 'eu-1' ? 'yes' : 'no';
          ctx.request.headers.set('x-env', [ctx.env.REGION, ctx.env.TOKEN, String(ctx.env.MISSING), frozen, Object.keys(ctx.env).join('+')].join(' '));
        }`,
      'headers.ts': `${TS}export default function (ctx: api.HeaderFilterContext) { ctx.response.headers.set('x-region', ctx.env.REGION ?? '?'); }`,
    });
    const res = await request(port);
    expect(res.status).toBe(200);
    expect(res.headers['x-region']).toBe('eu-1');
    expect(origin.seen[0]!.headers['x-env']).toBe('eu-1 from-the-environment undefined yes REGION+TOKEN');
  });

  it('script_body: access reads the JSON body (ngx.req.read_body), the upstream still gets it byte for byte; too large is 413', async () => {
    const origin = await startOrigin();
    const yaml = config([origin], '    script_body: 1kb\n    access_by_script: body.ts\n');
    const { port } = await startProxy(yaml, {
      'body.ts': `${TS}export default function (ctx: api.AccessContext) {
        const b = ctx.request.body;
        if (b === null) return ctx.exit(411, { body: 'no body' });
        const doc = b.json() as { action?: string };
        if (doc.action !== 'deploy') return ctx.exit(403, { body: 'action ' + String(doc.action) + ', ' + b.length + ' bytes, ' + b.bytes()[0] });
        ctx.request.headers.set('x-action', doc.action);
      }`,
    });
    const ok = JSON.stringify({ action: 'deploy', who: 'Jürgen' });
    const res = await request(port, { method: 'POST', path: '/hook', body: ok, headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(200);
    const seen = origin.seen[0]!;
    expect(seen.headers['x-action']).toBe('deploy');
    expect(seen.body.toString()).toBe(ok);
    const denied = await request(port, { method: 'POST', path: '/hook', body: '{"action":"drop"}' });
    expect(denied.status).toBe(403);
    expect(denied.text).toBe('action drop, 17 bytes, 123');
    // Chunked (no Content-Length) is read the same way.
    expect(await sendChunked(port, 'POST', '/hook', ['{"action":', '"deploy"}'])).toBe(200);
    const tooBig = await request(port, { method: 'POST', path: '/hook', body: 'x'.repeat(2000) });
    expect(tooBig.status).toBe(413);
    expect(tooBig.text).toContain("script_body");
    expect((await request(port, { path: '/hook' })).status).toBe(411);
    expect(origin.seen).toHaveLength(2);
  });

  it('setBody (ngx.req.set_body_data): rewrite replaces the body, access sees it, the upstream gets it with its own Content-Length', async () => {
    const origin = await startOrigin();
    const logs = captureLogs();
    const yaml = config([origin], '    script_body: 1kb\n    rewrite_by_script: rewrite.ts\n    access_by_script: access.ts\n');
    const { port } = await startProxy(
      yaml,
      {
        'rewrite.ts': `${TS}export default function (ctx: api.RewriteContext) {
          const mode = ctx.request.headers.get('x-mode');
          if (mode === 'bin') return ctx.request.setBody(new Uint8Array([0, 255, 10, 128]));
          if (mode === 'big') return ctx.request.setBody('x'.repeat(1025));
          if (mode === 'form') {
            ctx.request.method = 'POST';
            ctx.request.headers.set('content-type', 'application/x-www-form-urlencoded');
            return ctx.request.setBody('q=' + encodeURIComponent(ctx.request.query) + '&who=Jürgen');
          }
          const doc = ctx.request.body!.json() as Record<string, unknown>;
          delete doc.password;
          ctx.request.setBody(JSON.stringify(doc));
        }`,
        'access.ts': `${TS}export default function (ctx: api.AccessContext) {
          const b = ctx.request.body;
          const text = b === null || ctx.request.headers.has('x-mode') && ctx.request.headers.get('x-mode') === 'bin' ? '' : b.text().slice(0, 12);
          ctx.request.headers.set('x-access-saw', b === null ? 'none' : b.length + ' ' + text);
        }`,
      },
      logs.logger,
    );
    const sent = JSON.stringify({ user: 'ann', password: 'hunter2', note: 'ü' });
    expect((await request(port, { method: 'POST', path: '/login', body: sent, headers: { 'content-type': 'application/json' } })).status).toBe(200);
    const want = JSON.stringify({ user: 'ann', note: 'ü' });
    let seen = origin.seen.at(-1)!;
    expect(seen.body.toString()).toBe(want);
    expect(seen.headers['content-length']).toBe(String(Buffer.byteLength(want)));
    expect(seen.headers['x-access-saw']).toBe(`${Buffer.byteLength(want)} ${want.slice(0, 12)}`);

    // A chunked client body is replaced the same way: the upstream gets a Content-Length, no chunks.
    expect(await sendChunked(port, 'PUT', '/login', ['{"user":"bob",', '"password":"x"}'])).toBe(200);
    seen = origin.seen.at(-1)!;
    expect(seen.method).toBe('PUT');
    expect(seen.body.toString()).toBe('{"user":"bob"}');
    expect(seen.headers['content-length']).toBe('14');
    expect(seen.headers['transfer-encoding']).toBeUndefined();

    // A GET without a body becomes a form POST; bytes go as they are.
    expect((await request(port, { path: '/search?k=v', headers: { 'x-mode': 'form' } })).status).toBe(200);
    seen = origin.seen.at(-1)!;
    expect(seen.method).toBe('POST');
    expect(seen.body.toString()).toBe('q=k%3Dv&who=Jürgen');
    expect(seen.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(seen.headers['x-access-saw']).toBe(`${Buffer.byteLength('q=k%3Dv&who=Jürgen')} q=k%3Dv&who=`);
    expect((await request(port, { method: 'POST', path: '/bin', body: 'text', headers: { 'x-mode': 'bin' } })).status).toBe(200);
    expect([...origin.seen.at(-1)!.body]).toEqual([0, 255, 10, 128]);
    expect(origin.seen.at(-1)!.headers['x-access-saw']).toBe('4');

    // Larger than script_body: the script fails (500) and says why; nothing reaches the upstream.
    const before = origin.seen.length;
    expect((await request(port, { method: 'POST', path: '/big', body: '{}', headers: { 'x-mode': 'big' } })).status).toBe(500);
    expect(origin.seen).toHaveLength(before);
    expect((await logs.waitFor((l) => String(l.err ?? '').includes('larger than the route')))!.err).toMatch(/rewrite\.ts:\d+:\d+: .*1025 bytes is larger than the route's script_body \(1024 bytes\)/);
  });

  it('setBody on a route without script_body fails the request with a message that names the fix', async () => {
    const origin = await startOrigin();
    const logs = captureLogs();
    const { port } = await startProxy(config([origin], '    access_by_script: access.ts\n'), { 'access.ts': `${TS}export default function (ctx: api.AccessContext) { ctx.request.setBody('x'); }` }, logs.logger);
    expect((await request(port, { method: 'POST', path: '/', body: 'y' })).status).toBe(500);
    expect(origin.seen).toHaveLength(0);
    expect((await logs.waitFor((l) => String(l.err ?? '').includes('setBody')))!.err).toMatch(/route r has no script_body/);
  });

  it('a script can choose another configured upstream', async () => {
    const a = await startOrigin(undefined, 'a');
    const b = await startOrigin(undefined, 'b');
    const yaml = config([a], '    rewrite_by_script: pick.ts\n').replace('routes:', `  other:\n    targets: ["${b.address}"]\nroutes:`);
    const { port } = await startProxy(yaml, {
      'pick.ts': `${TS}export default function (ctx: api.RewriteContext) { if (ctx.request.headers.has('x-other')) ctx.upstream = 'other'; }`,
    });
    expect((await request(port)).text).toContain('origin:a');
    expect((await request(port, { headers: { 'x-other': '1' } })).text).toContain('origin:b');
  });

  it('exit in rewrite answers with its status, headers and body; access and the upstream never run', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(config([origin], '    rewrite_by_script: rewrite.ts\n    access_by_script: access.ts\n'), {
      'rewrite.ts': `${TS}export default function (ctx: api.RewriteContext) {
        if (ctx.request.path === '/teapot') ctx.exit(418, { headers: { 'x-why': 'tea', 'set-cookie': ['a=1', 'b=2'] }, body: 'short and stout\\n' });
      }`,
      'access.ts': `${TS}export default function (ctx: api.AccessContext) { ctx.exit(403, { body: 'access ran' }); }`,
    });
    const res = await request(port, { path: '/teapot' });
    expect(res.status).toBe(418);
    expect(res.text).toBe('short and stout\n');
    expect(res.headers['x-why']).toBe('tea');
    expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(res.headers['content-length']).toBe(String('short and stout\n'.length));
    // Without the exit, access runs and ends the request.
    const denied = await request(port, { path: '/other' });
    expect(denied.status).toBe(403);
    expect(denied.text).toBe('access ran');
    expect(origin.seen).toHaveLength(0);
  });

  it('redirect in access sends Location with the status; the default is 302', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(config([origin], '    access_by_script: access.ts\n'), {
      'access.ts': `${TS}export default function (ctx: api.AccessContext) {
        if (ctx.request.path === '/old') return ctx.redirect('https://example.com/new?x=1', 301);
        ctx.redirect('/login');
      }`,
    });
    const moved = await request(port, { path: '/old' });
    expect(moved.status).toBe(301);
    expect(moved.headers.location).toBe('https://example.com/new?x=1');
    const found = await request(port, { path: '/anything' });
    expect(found.status).toBe(302);
    expect(found.headers.location).toBe('/login');
    expect(origin.seen).toHaveLength(0);
  });
});

describe('header_filter and body_filter', () => {
  it('header_filter changes the status and headers; vars from rewrite are visible', async () => {
    const origin = await startOrigin((_req, res) => {
      res.setHeader('server', 'secret/1.0');
      res.end('body stays');
    });
    const { port } = await startProxy(config([origin], '    rewrite_by_script: rewrite.ts\n    header_filter_by_script: headers.ts\n'), {
      'rewrite.ts': `${TS}export default function (ctx: api.RewriteContext) { ctx.vars.flavour = 'mint'; }`,
      'headers.ts': `${TS}export default function (ctx: api.HeaderFilterContext) {
        ctx.response.status = 203;
        ctx.response.headers.delete('server');
        ctx.response.headers.set('x-flavour', String(ctx.vars.flavour));
        ctx.response.headers.append('x-upstream-status', '200');
      }`,
    });
    const res = await request(port);
    expect(res.status).toBe(203);
    expect(res.text).toBe('body stays');
    expect(res.headers.server).toBeUndefined();
    expect(res.headers['x-flavour']).toBe('mint');
  });

  it('body_filter streams a 100 MB body through the script chunk by chunk with flat memory, chunked', async () => {
    const size = 100 * 1024 * 1024;
    const piece = Buffer.alloc(64 * 1024, 'abcdefghij');
    const origin = await startOrigin(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': size });
      for (let sent = 0; sent < size; sent += piece.length) {
        if (!res.write(piece)) await new Promise((r) => res.once('drain', r));
      }
      res.end();
    });
    // memory_mb bounds what the isolate keeps between its collections (chunk strings included).
    const { port } = await startProxy(config([origin], '    body_filter_by_script: upper.ts\n', 'tenants:\n  default: { memory_mb: 16, cpu_ms: 1000, scripts: . }\n'), {
      'upper.ts': `${TS}export default function (ctx: api.BodyFilterContext, chunk: string, eof: boolean) {
        return eof ? chunk.toUpperCase() + '[eof ' + ctx.response.status + ']' : chunk.toUpperCase();
      }`,
    });
    const rssBefore = process.memoryUsage().rss;
    let peak = rssBefore;
    const result = await new Promise<{ bytes: number; upperOnly: boolean; tail: string; headers: http.IncomingHttpHeaders }>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/big', agent: false }, (res) => {
        let bytes = 0;
        let upperOnly = true;
        let tail = '';
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          tail = (tail + c.toString('latin1')).slice(-32);
          if (/[abcdghij]/.test(c.toString('latin1'))) upperOnly = false; // ('e' and 'f' appear in the eof marker)
          peak = Math.max(peak, process.memoryUsage().rss);
        });
        res.on('end', () => resolve({ bytes, upperOnly, tail, headers: res.headers }));
        res.on('error', reject);
      });
    });
    expect(result.tail.endsWith('[eof 200]')).toBe(true);
    expect(result.bytes).toBe(size + '[eof 200]'.length);
    expect(result.upperOnly).toBe(true);
    expect(result.headers['content-length']).toBeUndefined();
    expect(result.headers['transfer-encoding']).toBe('chunked');
    // The whole body never sits in memory: the growth stays well under the body's size.
    console.log(`100 MB through body_filter: RSS grew ${Math.round((peak - rssBefore) / 1e6)} MB`);
    expect(peak - rssBefore).toBeLessThan(size);
  });

  it('a body_filter that returns nothing sends the original bytes; HEAD and 304 skip it', async () => {
    const origin = await startOrigin((req, res) => {
      if (req.url === '/304') {
        res.writeHead(304, { etag: '"x"' });
        return res.end();
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(req.method === 'HEAD' ? undefined : Buffer.from([0, 1, 2, 255, 254]));
    });
    const { port } = await startProxy(config([origin], '    body_filter_by_script: pass.ts\n'), {
      'pass.ts': `${TS}export default function (_ctx: api.BodyFilterContext, _chunk: string, _eof: boolean) {}`,
    });
    const res = await request(port);
    expect([...res.body]).toEqual([0, 1, 2, 255, 254]);
    const head = await request(port, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    const notModified = await request(port, { path: '/304' });
    expect(notModified.status).toBe(304);
    expect(notModified.body.length).toBe(0);
  });
});

describe('log', () => {
  it('log runs after the response with status, bytes, timings, upstream and vars', async () => {
    const origin = await startOrigin();
    const logs = captureLogs();
    const { port } = await startProxy(
      config([origin], '    access_by_script: access.ts\n    log_by_script: log.ts\n'),
      {
        'access.ts': `${TS}export default function (ctx: api.AccessContext) { ctx.vars.user = 'ann'; }`,
        'log.ts': `${TS}export default function (ctx: api.LogContext) {
          ctx.log.info('done', { status: ctx.response.status, bytes: ctx.bytesSent, user: ctx.vars.user,
            upstream: ctx.upstreamAddress, total: ctx.timings.total, header: ctx.timings.upstreamHeader });
        }`,
      },
      logs.logger,
    );
    const res = await request(port, { path: '/x' });
    expect(res.status).toBe(200);
    const line = await logs.waitFor((l) => l.msg === 'done');
    expect(line).toMatchObject({ status: 200, bytes: res.body.length, user: 'ann', upstream: origin.address, route: 'r', tenant: 'default' });
    expect(line.total as number).toBeGreaterThanOrEqual(line.header as number);
  });

  it('a client that aborts mid-response still gets its log phase run (with the abort) and its vars freed', async () => {
    let release!: () => void;
    const origin = await startOrigin((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first part');
      release = () => res.end('rest');
    });
    const logs = captureLogs();
    const { port } = await startProxy(
      config([origin], '    access_by_script: access.ts\n    log_by_script: log.ts\n'),
      {
        'access.ts': `${TS}export default function (ctx: api.AccessContext) { ctx.vars.big = 'x'.repeat(1000); ctx.vars.id = ctx.requestId; }`,
        'log.ts': `${TS}export default function (ctx: api.LogContext) {
          ctx.log.info('logged', { status: ctx.response.status, hasVars: typeof ctx.vars.big === 'string', id: ctx.vars.id });
        }`,
      },
      logs.logger,
    );
    await new Promise<void>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/slow', agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
    });
    const line = await logs.waitFor((l) => l.msg === 'logged');
    expect(line.hasVars).toBe(true);
    release();
  });

  it('console.log/warn/error in a script reach the proxy log with the request, like ctx.log', async () => {
    const origin = await startOrigin();
    const logs = captureLogs();
    const { port } = await startProxy(
      config([origin], '    access_by_script: access.ts\n'),
      {
        'access.ts': `${TS}export default function (ctx: api.AccessContext) {
          console.log('user', { id: 7 }, 3);
          console.warn('careful');
          console.error(new Error('boom'));
        }`,
      },
      logs.logger,
    );
    expect((await request(port, { path: '/c' })).status).toBe(200);
    const info = await logs.waitFor((l) => l.msg === 'user {"id":7} 3');
    expect(info).toMatchObject({ level: 30, phase: 'access', tenant: 'default', route: 'r' });
    expect(typeof info.reqId).toBe('string');
    expect(await logs.waitFor((l) => l.msg === 'careful')).toMatchObject({ level: 40 });
    // The stack names the script's own file:line:column, not the bundle's.
    expect(String((await logs.waitFor((l) => l.level === 50 && String(l.msg).startsWith('Error: boom'))).msg)).toMatch(/access\.ts:5:\d+/);
  });

  it("a request sent after a response sees that response's log-phase writes (a /stats route, as in lua.conf)", async () => {
    const origin = await startOrigin();
    const yaml = config([origin], '    match: { path_prefix: /api/ }\n    log_by_script: count.ts\n').replace(
      'routes:',
      'shared_dicts:\n  stats: { capacity: 100 }\nroutes:\n  - name: stats\n    match: { path_prefix: /stats }\n    access_by_script: stats.ts\n',
    );
    const { port } = await startProxy(yaml, {
      'count.ts': `${TS}export default function (ctx: api.LogContext) { ctx.shared('stats').incr('requests', 1, 0); }`,
      'stats.ts': `${TS}export default function (ctx: api.AccessContext) { ctx.exit(200, { body: String(ctx.shared('stats').get('requests') ?? 0) }); }`,
    });
    for (let i = 1; i <= 5; i++) {
      expect((await request(port, { path: '/api/x' })).status).toBe(200);
      // Asked right away, on a fresh connection: nginx has run log_by_lua by then, and so has scriptgate.
      expect((await request(port, { path: '/stats' })).text).toBe(String(i));
    }
  });
});

describe('failures', () => {
  // [what, the failing statement, expected code, the tenant's cpu_ms]
  const cases: Array<[string, string, string, number?]> = [
    ['a throw', `throw new Error('boom at ' + ctx.request.path);`, 'PRX_ERR_SCRIPT'],
    ['an infinite loop', `for (;;) {}`, 'PRX_ERR_SCRIPT_TIMEOUT'],
    // Filling 16 MB takes a few hundred ms of CPU, so this tenant gets time enough to run out of memory first.
    ['a memory bomb', `const a: string[] = []; for (let i = 0; ; i++) a.push('x'.repeat(1024) + i);`, 'PRX_ERR_SCRIPT_MEMORY', 20_000],
    ['an infinite getter', `ctx.exit(200, { get body(): string { for (;;) {} } });`, 'PRX_ERR_SCRIPT_TIMEOUT'],
    ['a 100 MB header value', `ctx.request.headers.set('x-huge', 'x'.repeat(100 * 1024 * 1024));`, 'PRX_ERR_SCRIPT'],
    ['a forbidden call (ctx.response in access)', `(ctx as unknown as { response: { status: number } }).response.status = 1;`, 'PRX_ERR_PHASE_FORBIDDEN'],
  ];
  for (const [what, body, code, cpuMs = 200] of cases) {
    it(`${what} in access fails that request with 500, logs the script file and a reason, and the next request works`, async () => {
      const origin = await startOrigin();
      const logs = captureLogs();
      const { port } = await startProxy(
        config([origin], '    access_by_script: access.ts\n', `tenants:\n  default: { memory_mb: 16, cpu_ms: ${cpuMs}, scripts: . }\n`),
        {
          'access.ts': `${TS}export default function (ctx: api.AccessContext) {
  if (ctx.request.headers.has('x-fail')) {
    ${body}
  }
}`,
        },
        logs.logger,
      );
      const t0 = Date.now();
      const res = await request(port, { headers: { 'x-fail': '1' } });
      expect(res.status).toBe(500);
      expect(Date.now() - t0).toBeLessThan(10_000);
      const line = await logs.waitFor((l) => l.msg === 'script failed');
      expect(line.code).toBe(code);
      expect(String(line.err)).toContain('access.ts');
      expect(origin.seen).toHaveLength(0);
      const ok = await request(port);
      expect(ok.status).toBe(200);
    });
  }

  it('a script throw reports the script own file:line', async () => {
    const origin = await startOrigin();
    const logs = captureLogs();
    const { port } = await startProxy(config([origin], '    rewrite_by_script: rw.ts\n'), {
      'rw.ts': `${TS}\n\nexport default function (ctx: api.RewriteContext) {\n  const n: number = 1;\n  if (n) throw new Error('line five');\n}\n`,
    }, logs.logger);
    expect((await request(port)).status).toBe(500);
    const line = await logs.waitFor((l) => l.msg === 'script failed');
    expect(String(line.err)).toMatch(/rw\.ts:6:\d+/);
  });

  it('exit in header_filter is forbidden (500), while the same in access works', async () => {
    const origin = await startOrigin();
    const logs = captureLogs();
    const { port } = await startProxy(config([origin], '    header_filter_by_script: hf.ts\n'), {
      'hf.ts': `${TS}export default function (ctx: api.HeaderFilterContext) { (ctx as unknown as api.AccessContext).exit(200); }`,
    }, logs.logger);
    expect((await request(port)).status).toBe(500);
    expect((await logs.waitFor((l) => l.msg === 'script failed')).code).toBe('PRX_ERR_PHASE_FORBIDDEN');
  });

  it('require does nothing, and process, fetch and timers do not exist in a script', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(config([origin], '    header_filter_by_script: probe.ts\n'), {
      'probe.ts': `${TS}declare const require: unknown, process: unknown, fetch: unknown, setTimeout: unknown;
      export default function (ctx: api.HeaderFilterContext) {
        let escape = 'blocked';
        try { escape = String((ctx.constructor as unknown as (s: string) => () => unknown)('return typeof process')()); } catch { escape = 'threw'; }
        let req = 'loaded';
        const name = ['f', 's'].join(''); // a literal 'fs' is already refused at compile time
        try { (require as (m: string) => unknown)(name); } catch { req = 'threw'; }
        ctx.response.headers.set('x-probe', [req, typeof process, typeof fetch, typeof setTimeout, escape].join(','));
      }`,
    });
    const res = await request(port);
    expect(res.headers['x-probe']).toMatch(/^threw,undefined,undefined,undefined,(undefined|threw|blocked)$/);
  });
});

describe('tenants', () => {
  it("one tenant's infinite loop and memory bomb leave another tenant's requests answered correctly", async () => {
    const origin = await startOrigin();
    const yaml = `listen:\n  - address: 127.0.0.1:0\nlog: { level: silent }\nupstreams:\n  up:\n    targets: ["${origin.address}"]\ntenants:\n  bad: { memory_mb: 16, cpu_ms: 100, scripts: bad }\n  good: { scripts: good }\nroutes:\n  - name: bad\n    match: { path_prefix: /bad/ }\n    tenant: bad\n    upstream: up\n    access_by_script: a.ts\n  - name: good\n    match: { path_prefix: /good/ }\n    tenant: good\n    upstream: up\n    access_by_script: a.ts\n`;
    const { mkdirSync, writeFileSync } = await import('node:fs');
    const path = await import('node:path');
    const { writeConfig } = await import('../helpers/servers.ts');
    const file = writeConfig(yaml);
    const dir = path.dirname(file);
    mkdirSync(path.join(dir, 'bad'));
    mkdirSync(path.join(dir, 'good'));
    writeFileSync(path.join(dir, 'bad', 'a.ts'), `export default function (ctx: any) { if (ctx.request.path === '/bad/loop') for (;;) {} const a: string[] = []; for (let i = 0; ; i++) a.push('y'.repeat(4096) + i); }`);
    writeFileSync(path.join(dir, 'good', 'a.ts'), `export default function (ctx: any) { ctx.request.headers.set('x-tenant', ctx.tenant); }`);
    const { readFileSync } = await import('node:fs');
    const { parseConfig } = await import('../../src/config/load.ts');
    const { ProxyServer } = await import('../../src/control/proxy-server.ts');
    const { createLogger } = await import('../../src/observability/logger.ts');
    const { onTestFinished } = await import('vitest');
    const server = await ProxyServer.start(parseConfig(readFileSync(file, 'utf8'), file), createLogger('silent'));
    onTestFinished(() => server.shutdown(false));
    const port = server.ports[0]!;
    const results = await Promise.all([
      request(port, { path: '/bad/loop' }),
      request(port, { path: '/good/1' }),
      request(port, { path: '/bad/bomb' }),
      request(port, { path: '/good/2' }),
      request(port, { path: '/good/3' }),
    ]);
    expect(results.map((r) => r.status)).toEqual([500, 200, 500, 200, 200]);
    const goodSeen = origin.seen.filter((s) => s.url.startsWith('/good/'));
    expect(goodSeen).toHaveLength(3);
    expect(goodSeen.every((s) => s.headers['x-tenant'] === 'good')).toBe(true);
    // The bad tenant recovers too (its isolate was recreated).
    expect((await request(port, { path: '/good/4' })).status).toBe(200);
  });
});

describe('malformed traffic never reaches a script', () => {
  it('a raw request with conflicting Content-Length gets 400 and runs no phase', async () => {
    const origin = await startOrigin();
    const logs = captureLogs();
    const { port } = await startProxy(config([origin], '    access_by_script: a.ts\n'), {
      'a.ts': `${TS}export default function (ctx: api.AccessContext) { ctx.log.info('access ran'); }`,
    }, logs.logger);
    const text = await new Promise<string>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      let out = '';
      s.on('data', (c) => (out += c.toString()));
      s.on('close', () => resolve(out));
      s.on('error', () => undefined);
      s.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd');
    });
    expect(text).toMatch(/^HTTP\/1\.1 400/);
    expect(logs.lines.find((l) => l.msg === 'access ran')).toBeUndefined();
    expect(origin.seen).toHaveLength(0);
  });
});

describe('failures on the response side', () => {
  it('a header_filter that throws on a route with body_filter fails the request with 500, every time', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(config([origin], '    header_filter_by_script: h.ts\n    body_filter_by_script: b.ts\n'), {
      'h.ts': `${TS}export default function (_ctx: api.HeaderFilterContext) { throw new Error('nope'); }`,
      'b.ts': `${TS}export default function (_ctx: api.BodyFilterContext, chunk: string) { return chunk; }`,
    });
    expect((await request(port)).status).toBe(500);
    expect((await request(port)).status).toBe(500);
  });

  it('a body_filter that throws on a small response (head and body in one crossing) gets a 500 before anything is sent', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(config([origin], '    body_filter_by_script: b.ts\n'), {
      'b.ts': `${TS}export default function (_ctx: api.BodyFilterContext, _chunk: string) { throw new Error('x'); }`,
    });
    const res = await request(port);
    expect(res.status).toBe(500);
  });
});
