/**
 * What a script puts on the wire stays well-formed, end to end: the proxy owns message framing
 * (a script's Content-Length / Transfer-Encoding never desyncs a connection), a request-target is
 * ASCII (non-ASCII is percent-encoded as UTF-8), a header value is bytes, a final status is never
 * 1xx, and a script's own mistake is blamed on the script, never on a healthy upstream target.
 */
import { describe, expect, it } from 'vitest';
import { captureLogs } from '../helpers/log-capture.ts';
import { rawRequest, request, startOrigin, startProxy, statusOf, type Origin } from '../helpers/servers.ts';

const TS = 'import type * as api from "scriptgate/runtime-api";\n';

function config(origins: Origin[], route: string): string {
  return `listen:\n  - address: 127.0.0.1:0\nlog: { level: info, access_log: false }\nupstreams:\n  up:\n    targets: [${origins.map((o) => `"${o.address}"`).join(', ')}]\nroutes:\n  - name: r\n    upstream: up\n${route}`;
}

describe('framing stays the proxy’s', () => {
  it('a header_filter that sets Content-Length or Transfer-Encoding cannot desync a keep-alive connection; a 204 it makes has no length', async () => {
    const origin = await startOrigin((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '8' });
      res.end('cookies\n');
    });
    const { port } = await startProxy(config([origin], '    header_filter_by_script: hf.ts\n'), {
      'hf.ts': `${TS}export default function (ctx: api.HeaderFilterContext) {
        const how = ctx.request.headers.get('x-hf');
        if (how === 'cl') ctx.response.headers.set('content-length', '3');
        if (how === 'te') ctx.response.headers.set('transfer-encoding', 'chunked');
        if (how === '204') ctx.response.status = 204;
      }`,
    });
    // Three requests pipelined on one connection: each answer must be framed by its real length.
    const get = (hf: string, close = false) => `GET /x HTTP/1.1\r\nHost: a\r\nx-hf: ${hf}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;
    const raw = await rawRequest(port, get('cl') + get('te') + get('204', true));
    const answers = raw.text.split(/(?=HTTP\/1\.1 )/);
    expect(answers).toHaveLength(3);
    for (const a of answers.slice(0, 2)) {
      expect(statusOf(a)).toBe(200);
      expect(a).toMatch(/\r\ncontent-length: 8\r\n/i);
      expect(a).not.toMatch(/transfer-encoding/i);
      expect(a.endsWith('\r\n\r\ncookies\n')).toBe(true);
    }
    expect(statusOf(answers[2]!)).toBe(204);
    expect(answers[2]).not.toMatch(/content-length/i);
    expect(answers[2]!.endsWith('\r\n\r\n')).toBe(true);
  });

  it('rewrite cannot send its own Transfer-Encoding, Connection or Content-Length upstream: the client’s framing goes', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(config([origin], '    rewrite_by_script: rw.ts\n'), {
      'rw.ts': `${TS}export default function (ctx: api.RewriteContext) {
        ctx.request.headers.set('transfer-encoding', 'chunked');
        ctx.request.headers.set('content-length', '1');
        ctx.request.headers.set('connection', 'close');
        ctx.request.headers.set('x-kept', 'yes');
      }`,
    });
    const res = await request(port, { method: 'POST', path: '/p', body: 'hello body', headers: { 'content-type': 'text/plain' } });
    expect(res.status).toBe(200);
    const seen = origin.seen[0]!;
    expect(seen.body.toString()).toBe('hello body');
    expect(seen.headers['content-length']).toBe('10');
    expect(seen.headers['transfer-encoding']).toBeUndefined();
    expect(seen.headers['x-kept']).toBe('yes');
  });
});

describe('values a script sets are checked or encoded where the script set them', () => {
  it('a non-ASCII path, query or redirect URL is percent-encoded as UTF-8 (nginx escapes a URI it sets)', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(config([origin], '    rewrite_by_script: rw.ts\n'), {
      'rw.ts': `${TS}export default function (ctx: api.RewriteContext) {
        if (ctx.request.path === '/go') return ctx.redirect('/straße?q=€');
        ctx.request.path = '/Grüße/😀';
        ctx.request.query = 'q=é&x=%20';
      }`,
    });
    expect((await request(port, { path: '/x' })).status).toBe(200);
    expect(origin.seen[0]!.url).toBe('/Gr%C3%BC%C3%9Fe/%F0%9F%98%80?q=%C3%A9&x=%20');
    const r = await request(port, { path: '/go' });
    expect(r.status).toBe(302);
    expect(r.headers.location).toBe('/stra%C3%9Fe?q=%E2%82%AC');
  });

  it('a header value above U+00FF or a 1xx exit fails only that request, at the script’s line, and never ejects the upstream target', async () => {
    const origin = await startOrigin();
    const logs = captureLogs();
    const { port } = await startProxy(
      config([origin], '    rewrite_by_script: rw.ts\n    header_filter_by_script: hf.ts\n'),
      {
        'rw.ts': `${TS}export default function (ctx: api.RewriteContext) {
  const how = ctx.request.headers.get('x-how');
  if (how === 'euro') ctx.request.headers.set('x-u', 'ü€');
  if (how === 'exit101') ctx.exit(101);
  if (how === 'latin1') ctx.request.headers.set('x-u', 'ü');
}`,
        'hf.ts': `${TS}export default function (ctx: api.HeaderFilterContext) {
  if (ctx.request.headers.get('x-how') === 'hf') ctx.response.headers.set('x-u', '€');
}`,
      },
      logs.logger,
    );
    for (const [how, line] of [['euro', 4], ['exit101', 5], ['hf', 3]] as const) {
      const res = await request(port, { headers: { 'x-how': how } });
      expect(res.status, how).toBe(500);
      const logged = await logs.waitFor((l) => l.msg === 'script failed' && String(l.err).includes(`${how === 'hf' ? 'hf' : 'rw'}.ts:${line}:`));
      expect(logged.code).toBe('PRX_ERR_SCRIPT');
    }
    expect(logs.lines.some((l) => /ejected/.test(String(l.msg)))).toBe(false);
    // A latin1 character is a byte: it goes upstream as that byte.
    expect((await request(port, { headers: { 'x-how': 'latin1' } })).status).toBe(200);
    expect(Buffer.from(origin.seen.at(-1)!.headers['x-u'] as string, 'latin1')).toEqual(Buffer.from([0xfc]));
  });

  it('a promise callback that throws is the script’s failure (with its file:line), not a bug of the proxy', async () => {
    const origin = await startOrigin();
    const logs = captureLogs();
    const { port } = await startProxy(config([origin], '    access_by_script: ac.ts\n'), {
      'ac.ts': `${TS}export default function (_ctx: api.AccessContext) {
  Promise.resolve().then(() => {
    throw new Error('late failure');
  });
}`,
    }, logs.logger);
    expect((await request(port)).status).toBe(500);
    const logged = await logs.waitFor((l) => l.msg === 'script failed');
    expect(logged.code).toBe('PRX_ERR_SCRIPT');
    expect(String(logged.err)).toMatch(/ac\.ts:4:\d+/);
    expect(String(logged.err)).toContain('late failure');
  });

  it('WebAssembly and SharedArrayBuffer are not offered (wasm memory escapes memory_mb)', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(config([origin], '    access_by_script: ac.ts\n'), {
      'ac.ts': `${TS}export default function (ctx: api.AccessContext) {
        const g = globalThis as Record<string, unknown>;
        ctx.exit(200, { body: [typeof g.WebAssembly, typeof g.SharedArrayBuffer, typeof Atomics].join(' ') });
      }`,
    });
    expect((await request(port)).text).toBe('undefined undefined object');
  });
});
