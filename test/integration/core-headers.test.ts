import { describe, expect, it } from 'vitest';
import { rawRequest, request, simpleConfig, startOrigin, startProxy, statusOf } from '../helpers/servers.ts';
import { captureLogs } from '../helpers/log-capture.ts';

/** Header lines of the first response in raw HTTP text, as [lower-case name, value] pairs. */
function rawHead(text: string): Array<[string, string]> {
  const head = text.slice(0, text.indexOf('\r\n\r\n'));
  return head
    .split('\r\n')
    .slice(1)
    .map((l) => {
      const i = l.indexOf(':');
      return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()] as [string, string];
    });
}

/** rawHeaders ([n, v, n, v]) → [lower-case name, value] pairs. */
function pairs(raw: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < raw.length; i += 2) out.push([raw[i]!.toLowerCase(), raw[i + 1]!]);
  return out;
}

const HOP = ['keep-alive', 'te', 'trailer', 'upgrade', 'proxy-connection'];

describe('hop-by-hop and end-to-end headers', () => {
  it('request hop-by-hop headers and the ones Connection names never reach the origin', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(simpleConfig([origin]));
    const res = await rawRequest(
      port,
      'POST /h HTTP/1.1\r\nHost: a.test\r\nConnection: close, X-Hop-One\r\nConnection: x-hop-two\r\nX-Hop-One: 1\r\nX-Hop-Two: 2\r\n' +
        'Keep-Alive: timeout=9\r\nTE: trailers\r\nTrailer: X-Checksum\r\nUpgrade: h2c\r\nProxy-Connection: keep-alive\r\nX-Keep: yes\r\n' +
        'Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
      2000,
    );
    expect(statusOf(res.text)).toBe(200);
    const seen = pairs(origin.seen[0]!.rawHeaders);
    const names = seen.map(([n]) => n);
    for (const h of [...HOP, 'x-hop-one', 'x-hop-two']) expect(names, h).not.toContain(h);
    // The proxy's own connection management toward the origin, nothing from the client.
    for (const [n, v] of seen) if (n === 'connection') expect(v.toLowerCase()).toMatch(/^(keep-alive|close)$/);
    expect(seen).toContainEqual(['x-keep', 'yes']);
    expect(origin.seen[0]!.body.toString()).toBe('hello');
  });

  it('response hop-by-hop headers and the ones Connection names never reach the client', async () => {
    const origin = await startOrigin((_req, res) => {
      res.socket!.write(
        'HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Resp-Hop\r\nX-Resp-Hop: 1\r\nKeep-Alive: timeout=7, max=99\r\nTE: trailers\r\n' +
          'Trailer: X-Checksum\r\nUpgrade: h2c\r\nProxy-Connection: keep-alive\r\nX-End: kept\r\nTransfer-Encoding: chunked\r\n\r\n' +
          '3\r\nabc\r\n0\r\nX-Checksum: 1\r\n\r\n',
      );
    });
    const { port } = await startProxy(simpleConfig([origin]));
    const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n', 2000);
    expect(statusOf(res.text)).toBe(200);
    const head = rawHead(res.text);
    const names = head.map(([n]) => n);
    for (const h of ['te', 'trailer', 'upgrade', 'proxy-connection', 'x-resp-hop', 'keep-alive']) expect(names, h).not.toContain(h);
    expect(head.filter(([n]) => n === 'connection')).toEqual([['connection', 'close']]);
    expect(head).toContainEqual(['x-end', 'kept']);
    expect(res.text).toMatch(/\r\n\r\n3\r\nabc\r\n0\r\n\r\n$/);
    expect(res.text).not.toContain('X-Checksum: 1');
  });

  it('the origin Keep-Alive header never reaches the client', async () => {
    const origin = await startOrigin((_req, res) => {
      res.setHeader('keep-alive', 'timeout=7, max=99');
      res.end('ok');
    });
    const { port } = await startProxy(simpleConfig([origin]));
    const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n', 2000);
    const ka = rawHead(res.text).filter(([n]) => n === 'keep-alive');
    expect(ka.every(([, v]) => !v.includes('max=99'))).toBe(true);
  });

  it('end-to-end request headers are kept exactly, repeats included and in order', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(simpleConfig([origin]));
    await rawRequest(
      port,
      'GET / HTTP/1.1\r\nHost: a.test\r\nX-Multi: one\r\nAccept: text/html\r\nX-Multi: two, three\r\nCookie: a=1\r\nCookie: b=2\r\nX-Spaces: a  b\r\nConnection: close\r\n\r\n',
      2000,
    );
    const seen = pairs(origin.seen[0]!.rawHeaders);
    expect(seen.filter(([n]) => n === 'x-multi')).toEqual([
      ['x-multi', 'one'],
      ['x-multi', 'two, three'],
    ]);
    expect(seen.filter(([n]) => n === 'cookie').map(([, v]) => v)).toEqual(['a=1', 'b=2']);
    expect(seen).toContainEqual(['accept', 'text/html']);
    expect(seen).toContainEqual(['x-spaces', 'a  b']);
  });

  it('end-to-end response headers are kept exactly, including several Set-Cookie and repeated headers', async () => {
    const origin = await startOrigin((_req, res) => {
      res.setHeader('set-cookie', ['a=1; Path=/', 'b=2; HttpOnly', 'c=3; Expires=Wed, 21 Oct 2037 07:28:00 GMT']);
      res.setHeader('x-multi', ['one', 'two']);
      res.setHeader('cache-control', 'no-store');
      res.setHeader('content-type', 'text/plain; charset=utf-8');
      res.end('ok');
    });
    const { port } = await startProxy(simpleConfig([origin]));
    const res = await request(port);
    const got = pairs(res.rawHeaders);
    expect(got.filter(([n]) => n === 'set-cookie').map(([, v]) => v)).toEqual(['a=1; Path=/', 'b=2; HttpOnly', 'c=3; Expires=Wed, 21 Oct 2037 07:28:00 GMT']);
    expect(got.filter(([n]) => n === 'x-multi').map(([, v]) => v)).toEqual(['one', 'two']);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(res.text).toBe('ok');
  });

  it('the origin Date header is passed through, not replaced', async () => {
    const date = 'Tue, 01 Jan 2030 00:00:00 GMT';
    const origin = await startOrigin((_req, res) => {
      res.setHeader('date', date);
      res.end('ok');
    });
    const { port } = await startProxy(simpleConfig([origin]));
    const res = await request(port);
    expect(pairs(res.rawHeaders).filter(([n]) => n === 'date')).toEqual([['date', date]]);
  });
});

describe('X-Forwarded-* and Host', () => {
  it('X-Forwarded-For is appended to the incoming ones; Proto is http; Host is the client Host', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(simpleConfig([origin]));
    await rawRequest(
      port,
      'GET / HTTP/1.1\r\nHost: Shop.Example.com:8080\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2, 10.0.0.3\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\nConnection: close\r\n\r\n',
      2000,
    );
    const seen = pairs(origin.seen[0]!.rawHeaders);
    expect(seen.filter(([n]) => n === 'x-forwarded-for')).toEqual([['x-forwarded-for', '10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1']]);
    expect(seen.filter(([n]) => n === 'x-forwarded-proto')).toEqual([['x-forwarded-proto', 'http']]);
    expect(seen.filter(([n]) => n === 'x-forwarded-host')).toEqual([['x-forwarded-host', 'Shop.Example.com:8080']]);
    expect(seen.filter(([n]) => n === 'host')).toEqual([['host', 'Shop.Example.com:8080']]);
  });

  it('without an incoming X-Forwarded-For the origin gets the client address alone', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(simpleConfig([origin]));
    await request(port, { host: 'a.test' });
    expect(origin.seen[0]!.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(origin.seen[0]!.headers['x-forwarded-host']).toBe('a.test');
    expect(origin.seen[0]!.headers.host).toBe('a.test');
  });

  it('a route with upstream_host sends that Host upstream and keeps the client Host in X-Forwarded-Host', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(
      `listen:\n  - address: 127.0.0.1:0\nlog: { level: silent }\nupstreams:\n  up: { targets: ["${origin.address}"] }\nroutes:\n  - upstream: up\n    upstream_host: one.one.one.one\n`,
    );
    await request(port, { host: 'client.test' });
    expect(pairs(origin.seen[0]!.rawHeaders).filter(([n]) => n === 'host')).toEqual([['host', 'one.one.one.one']]);
    expect(origin.seen[0]!.headers['x-forwarded-host']).toBe('client.test');
  });

  it('X-Forwarded-Port is the port the client connected to; client copies of it, and underscore spellings of the proxy-set headers, are dropped', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(simpleConfig([origin]));
    await rawRequest(
      port,
      'GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-Port: 443\r\nX_Forwarded_Proto: https\r\nX_Forwarded_Host: evil.test\r\nX_Forwarded_For: 6.6.6.6\r\nX-Forwarded_Port: 1\r\nX_Request_Id: forged\r\nX_Custom: kept\r\nConnection: close\r\n\r\n',
      2000,
    );
    const seen = pairs(origin.seen[0]!.rawHeaders);
    expect(seen.filter(([n]) => n.replace(/_/g, '-').startsWith('x-forwarded-') || n.replace(/_/g, '-') === 'x-request-id').map(([n]) => n).sort()).toEqual(['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-port', 'x-forwarded-proto', 'x-request-id']);
    expect(origin.seen[0]!.headers['x-forwarded-port']).toBe(String(port));
    // Every other underscore name too, by default (nginx's underscores_in_headers off).
    expect(origin.seen[0]!.headers['x_custom']).toBeUndefined();
  });

  it('headers with an underscore are dropped before scripts and upstream see them, unless limits.underscores_in_headers keeps them (then only the proxy-set spellings go)', async () => {
    const origin = await startOrigin();
    const routes = `tenants:
  t: { scripts: "." }
routes:
  - name: all
    upstream: up
    tenant: t
    access_by_script: access.ts
`;
    // The auth example's pattern: the script sets X-User; a client's X_User must not ride beside it.
    const files = { 'access.ts': `export default function (ctx: any) { ctx.request.headers.set('x-user', 'bob'); ctx.request.headers.set('x-saw', String(ctx.request.headers.get('x_user'))); }` };
    const base = simpleConfig([origin]).replace(/routes:[\s\S]*$/, routes);
    const { port } = await startProxy(base, files);
    await rawRequest(port, 'GET / HTTP/1.1\r\nHost: a\r\nX_User: alice\r\nX-Other_Thing: 1\r\nConnection: close\r\n\r\n', 2000);
    expect(pairs(origin.seen[0]!.rawHeaders).filter(([n]) => n.includes('user') || n.includes('other') || n === 'x-saw')).toEqual([['x-user', 'bob'], ['x-saw', 'null']]);
    const kept = await startProxy(base.replace('upstreams:', 'limits: { underscores_in_headers: true }\nupstreams:'), files);
    await rawRequest(kept.port, 'GET / HTTP/1.1\r\nHost: a\r\nX_User: alice\r\nX_Forwarded_For: 6.6.6.6\r\nConnection: close\r\n\r\n', 2000);
    expect(origin.seen[1]!.headers['x_user']).toBe('alice');
    expect(origin.seen[1]!.headers['x-saw']).toBe('alice');
    expect(origin.seen[1]!.headers['x_forwarded_for']).toBeUndefined();
  });

  it("the access log names the client (client_ip, client_port) also for a POST whose connection closes after its response", async () => {
    const origin = await startOrigin();
    const logs = captureLogs();
    const { port } = await startProxy(simpleConfig([origin]).replace('log: { level: silent }', 'log: { level: info, access_log: { fields: [method, path, client_ip, client_port] } }'), {}, logs.logger);
    await rawRequest(port, 'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc', 2000);
    const line = await logs.waitFor((l) => l.msg === 'access' && l.path === '/p');
    expect(line.client_ip).toBe('127.0.0.1');
    expect(typeof line.client_port).toBe('number');
  });

  it('an HTTP/1.0 request without Host goes upstream with the target as Host, never an empty one', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(simpleConfig([origin]));
    const res = await rawRequest(port, 'GET /old HTTP/1.0\r\n\r\n', 2000);
    expect(statusOf(res.text)).toBe(200);
    expect(origin.seen[0]!.headers.host).toBe(origin.address);
  });
});

describe('X-Request-Id', () => {
  it('a valid incoming X-Request-Id is kept; an invalid one is replaced by a fresh UUID', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(simpleConfig([origin]));
    await request(port, { headers: { 'x-request-id': 'abc-123.x:y_z' } });
    await request(port, { headers: { 'x-request-id': 'has spaces and "quotes"' } });
    await request(port);
    expect(origin.seen[0]!.headers['x-request-id']).toBe('abc-123.x:y_z');
    expect(origin.seen[1]!.headers['x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(origin.seen[2]!.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(origin.seen[1]!.headers['x-request-id']).not.toBe(origin.seen[2]!.headers['x-request-id']);
  });
});
