/**
 * HTTP/2 downstream and upstream: h2c by prior knowledge beside HTTP/1.1 on one plain port, many
 * concurrent streams on one connection, phase scripts on h2 requests (they see only
 * httpVersion), request and response bodies streamed both ways, and `protocol: http2` upstreams
 * over h2c and TLS with trailers carried to the client.
 */
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { makePki } from '../helpers/certs.ts';
import { h2Connect, h2Request } from '../helpers/h2-client.ts';
import { rawRequest, request, simpleConfig, startOrigin, startProxy, statusOf } from '../helpers/servers.ts';

function h2cConfig(origin: string, extra = '', upstreamExtra = ''): string {
  return `listen:
  - address: 127.0.0.1:0
    http2: true
log: { level: silent }
upstreams:
  up:
    targets: ["${origin}"]
${upstreamExtra}routes:
  - name: all
    upstream: up
${extra}`;
}

/** An HTTP/2 origin (h2c, or TLS when `secure` is given) answering with its view of the request, plus trailers. */
async function startH2Origin(secure?: { cert: string; key: string }) {
  const seen: Array<{ headers: http2.IncomingHttpHeaders; bodyLength: number }> = [];
  const onStream = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    let n = 0;
    stream.on('data', (c: Buffer) => (n += c.length));
    stream.on('end', () => {
      seen.push({ headers, bodyLength: n });
      stream.respond({ ':status': 200, 'content-type': 'text/plain', 'x-origin-proto': 'h2' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': String(n) }));
      stream.end(`h2 origin ${headers[':method']} ${headers[':path']} ${n}`);
    });
  };
  const server = secure ? http2.createSecureServer({ cert: readFileSync(secure.cert), key: readFileSync(secure.key) }) : http2.createServer();
  server.on('stream', onStream);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const sessions = new Set<http2.Http2Session>();
  server.on('session', (s) => sessions.add(s));
  onTestFinished(
    () =>
      new Promise<void>((r) => {
        for (const s of sessions) s.destroy();
        server.close(() => r());
      }),
  );
  return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

describe('HTTP/2 downstream', () => {
  it('h2c prior knowledge and HTTP/1.1 are both served on one plain http2 listener', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(h2cConfig(origin.address));
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const res = await h2Request(session, { ':path': '/a?b=1', ':authority': 'h2.test' });
    expect(res.status).toBe(200);
    expect(res.text).toBe('origin:o GET /a?b=1');
    expect(origin.seen[0]!.headers.host).toBe('h2.test');

    const h1 = await request(port, { path: '/h1' });
    expect(h1.text).toBe('origin:o GET /h1');
    // A malformed HTTP/1.1 request is still refused by the HTTP/1.1 parser.
    expect(statusOf((await rawRequest(port, 'GARBAGE\r\n\r\n')).text)).toBe(400);
    // A request line that starts like the preface but is not it goes to HTTP/1.1.
    expect(statusOf((await rawRequest(port, 'PRI * HTTP/1.1\r\nHost: x\r\n\r\n')).text)).toBe(400);
  });

  it('100 concurrent streams on one connection are all answered', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(h2cConfig(origin.address));
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const all = await Promise.all(Array.from({ length: 100 }, (_, i) => h2Request(session, { ':path': `/s/${i}`, ':authority': 'h2.test' })));
    expect(all.map((r) => r.text)).toEqual(Array.from({ length: 100 }, (_, i) => `origin:o GET /s/${i}`));
  });

  it('request and response bodies stream both ways (8 MB each, flow control respected)', async () => {
    const big = Buffer.alloc(8 << 20, 'x');
    const origin = await startOrigin((_req, res, body) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-got': String(body.length) });
      res.end(big);
    });
    const { port } = await startProxy(h2cConfig(origin.address));
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const res = await h2Request(session, { ':path': '/upload', ':method': 'POST', ':authority': 'h2.test' }, Buffer.alloc(8 << 20, 'y'));
    expect(res.headers['x-got']).toBe(String(8 << 20));
    expect(res.body.length).toBe(8 << 20);
    expect(origin.seen[0]!.headers['content-length']).toBeUndefined(); // h2 body without a length goes chunked
  });

  it('phase scripts run on h2 requests; the access script sees httpVersion 2.0', async () => {
    const origin = await startOrigin();
    const files = {
      'access.ts': `import type { AccessContext } from 'scriptgate/runtime-api';
export default function access(ctx: AccessContext) {
  if (ctx.request.headers.get('x-deny')) return ctx.exit(403, { body: 'denied\\n' });
  ctx.request.headers.set('x-seen-version', ctx.request.httpVersion);
}
`,
      'headers.ts': `import type { HeaderFilterContext } from 'scriptgate/runtime-api';
export default function headerFilter(ctx: HeaderFilterContext) {
  ctx.response.headers.set('x-filtered', 'yes');
}
`,
    };
    const { port } = await startProxy(h2cConfig(origin.address, '    access_by_script: access.ts\n    header_filter_by_script: headers.ts\n'), files);
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const res = await h2Request(session, { ':path': '/p', ':authority': 'h2.test' });
    expect(res.status).toBe(200);
    expect(res.headers['x-filtered']).toBe('yes');
    expect(origin.seen[0]!.headers['x-seen-version']).toBe('2.0');
    const denied = await h2Request(session, { ':path': '/p', ':authority': 'h2.test', 'x-deny': '1' });
    expect([denied.status, denied.text]).toEqual([403, 'denied\n']);
    // The same scripts on HTTP/1.1 see 1.1.
    const h1 = await request(port, { path: '/p' });
    expect(h1.headers['x-filtered']).toBe('yes');
    expect(origin.seen[1]!.headers['x-seen-version']).toBe('1.1');
  });

  it('no route and a refused upstream are plain HTTP errors for non-gRPC h2 requests', async () => {
    const { port } = await startProxy(`listen:
  - address: 127.0.0.1:0
    http2: true
log: { level: silent }
upstreams:
  dead: { targets: ["127.0.0.1:1"], retries: 0 }
routes:
  - match: { host: dead.test }
    upstream: dead
`);
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    expect((await h2Request(session, { ':path': '/', ':authority': 'nothing.test' })).status).toBe(404);
    expect((await h2Request(session, { ':path': '/', ':authority': 'dead.test' })).status).toBe(502);
  });
});

describe('HTTP/2 methods', () => {
  it('take the same rule as HTTP/1.1: known methods pass, an unknown upper-case token is 501, a lower-case one 400; none reaches the origin', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(simpleConfig([origin]).replace('  - address: 127.0.0.1:0\n', '  - address: 127.0.0.1:0\n    http2: true\n'));
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    expect((await h2Request(session, { ':method': 'PROPFIND', ':path': '/dav' })).status).toBe(200);
    expect((await h2Request(session, { ':method': 'FOOBAR', ':path': '/x' })).status).toBe(501);
    expect((await h2Request(session, { ':method': 'get', ':path': '/y' })).status).toBe(400);
    expect(origin.seen.map((r) => `${r.method} ${r.url}`)).toEqual(['PROPFIND /dav']);
  });
});

describe('HTTP/2 connection limits', () => {
  it('a stream outlives keepalive_timeout; the connection is closed with GOAWAY once idle that long', async () => {
    const origin = await startOrigin((_req, res) => setTimeout(() => res.end('late'), 600));
    const { port } = await startProxy(`listen:
  - address: 127.0.0.1:0
    http2: true
    limits: { keepalive_timeout: 250ms }
log: { level: silent }
upstreams:
  up: { targets: ["${origin.address}"] }
routes:
  - upstream: up
`);
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const goaway = new Promise<number>((r) => session.once('goaway', (code: number) => r(code)));
    const res = await h2Request(session, { ':path': '/slow', ':authority': 'h2.test' });
    expect(res.text).toBe('late');
    const t0 = Date.now();
    expect(await goaway).toBe(0);
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});

describe('HTTP/2 connection without a request', () => {
  it('a client that negotiates HTTP/2 and sends no request is closed after client_header_timeout, not keepalive_timeout', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(simpleConfig([origin]).replace('  - address: 127.0.0.1:0\n', '  - address: 127.0.0.1:0\n    http2: true\n    limits: { client_header_timeout: 300ms, keepalive_timeout: 60s }\n'));
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const t0 = Date.now();
    await new Promise((r) => session.once('close', r));
    expect(Date.now() - t0).toBeLessThan(5000);
    // One that asks in time is served and kept.
    const busy = await h2Connect(`http://127.0.0.1:${port}`);
    expect((await h2Request(busy, { ':path': '/x' })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 500));
    expect(busy.closed || busy.destroyed).toBe(false);
  });
});

/** A plain h2c origin on loopback calling `onStream` per stream; its sessions are destroyed after the test. */
async function startH2Server(onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void): Promise<{ address: string; sessions: Set<http2.ServerHttp2Session> }> {
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => sessions.add(s));
  server.on('stream', onStream);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onTestFinished(() => {
    for (const s of sessions) s.destroy();
    server.close();
  });
  return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, sessions };
}

describe('HTTP/2 upstreams', () => {
  it('protocol: http2 over h2c: streams multiplexed, bodies and trailers forwarded to an h2 client', async () => {
    const origin = await startH2Origin();
    const { port } = await startProxy(h2cConfig(origin.address, '', '    protocol: http2\n'));
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const res = await h2Request(session, { ':path': '/up', ':method': 'POST', ':authority': 'h2.test' }, 'hello');
    expect(res.text).toBe('h2 origin POST /up 5');
    expect(res.headers['x-origin-proto']).toBe('h2');
    expect(res.trailers['x-checksum']).toBe('5');
    expect(origin.seen[0]!.headers[':authority']).toBe('h2.test');
    const many = await Promise.all(Array.from({ length: 20 }, (_, i) => h2Request(session, { ':path': `/m/${i}`, ':authority': 'h2.test' })));
    expect(many.every((r, i) => r.text === `h2 origin GET /m/${i} 0`)).toBe(true);
    // An HTTP/1.1 client gets the same body (trailers only when it asks for them).
    const h1 = await request(port, { path: '/h1' });
    expect(h1.text).toBe('h2 origin GET /h1 0');
  });

  it("an origin's graceful GOAWAY (NO_ERROR, as nginx's keepalive_requests or gRPC's max connection age) lets its streams finish and the next requests go to a new connection", async () => {
    // Every third stream on a session: the origin starts a graceful close (GOAWAY, NO_ERROR), then
    // answers 100 ms later, while other requests are in flight on the same session.
    let streams = 0;
    const { address, sessions } = await startH2Server((stream, headers) => {
      const n = ++streams;
      if (n % 3 === 0) stream.session?.close();
      setTimeout(() => {
        if (stream.destroyed) return;
        stream.respond({ ':status': 200 });
        stream.end(`answer ${headers[':path']}`);
      }, n % 3 === 0 ? 100 : 20);
    });
    const { port } = await startProxy(h2cConfig(address, '', '    protocol: http2\n    retries: 0\n    passive: { max_fails: 1, cooldown: 30s }\n'));
    for (let round = 0; round < 6; round++) {
      // Many at once: some are written on a session just as its GOAWAY arrives.
      const n = round < 3 ? 4 : 16;
      const batch = await Promise.all(Array.from({ length: n }, (_, i) => request(port, { path: `/r${round}/${i}` })));
      expect(batch.map((r) => r.status)).toEqual(Array(n).fill(200));
      expect(batch.map((r) => r.text)).toEqual(Array.from({ length: n }, (_, i) => `answer /r${round}/${i}`));
    }
    expect(sessions.size).toBeGreaterThan(1);
  });

  it('requests to an HTTP/2 upstream share a connection as concurrent streams, POSTs and streamed bodies too (gRPC calls never wait behind a long one)', async () => {
    let open = 0;
    let peak = 0;
    const { address, sessions } = await startH2Server((stream) => {
      peak = Math.max(peak, ++open);
      stream.resume();
      stream.on('end', () =>
        setTimeout(() => {
          open--;
          stream.respond({ ':status': 200 });
          stream.end('done');
        }, 300),
      );
    });
    const { port } = await startProxy(h2cConfig(address, '', '    protocol: http2\n    connections: 1\n'));
    expect((await request(port, { path: '/warm' })).status).toBe(200);
    const t0 = Date.now();
    const all = await Promise.all(Array.from({ length: 8 }, (_, i) => request(port, { method: 'POST', path: `/p${i}`, body: 'x'.repeat(100), headers: { 'transfer-encoding': 'chunked' } })));
    expect(all.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(peak).toBe(8);
    expect(sessions.size).toBe(1);
    expect(Date.now() - t0).toBeLessThan(2000); // one at a time would take 8 × 300 ms
  });

  it('protocol: http2 over TLS (ALPN h2) with the upstream CA', async () => {
    const pki = makePki();
    const leaf = pki.leaf('origin', ['origin.test']);
    const origin = await startH2Origin(leaf);
    const { port } = await startProxy(h2cConfig(origin.address, '', `    protocol: http2\n    tls: { sni: origin.test, ca: ${pki.ca.cert} }\n`));
    const res = await request(port, { path: '/tls' });
    expect(res.status).toBe(200);
    expect(res.text).toBe('h2 origin GET /tls 0');
  });
});
