/**
 * HTTP/2 edge cases a real client or peer produces: a stream reset in the same packet as its
 * HEADERS, a client that cancels mid-response (the upstream request must be cancelled too),
 * Cookie crumbs on their way to an HTTP/1.1 origin (RFC 9113 §8.2.3), :authority against Host
 * (§8.3.1), and an HTTP/2 upstream's body followed by trailers while the proxy applies
 * back-pressure (the whole body, then the trailers).
 */
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { h2Connect, h2Request } from '../helpers/h2-client.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { closeServer, startOrigin, startProxy } from '../helpers/servers.ts';

function h2cConfig(origin: string, upstreamExtra = '', routes = '  - name: all\n    upstream: up\n'): string {
  return `listen:\n  - address: 127.0.0.1:0\n    http2: true\nlog: { level: silent }\nupstreams:\n  up:\n    targets: ["${origin}"]\n${upstreamExtra}routes:\n${routes}`;
}

/** One HTTP/2 frame. */
function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK: each field as a literal without indexing, new name, no Huffman (names and values < 127 bytes). */
function hpack(fields: Array<[string, string]>): Buffer {
  return Buffer.concat(fields.flatMap(([n, v]) => [Buffer.from([0, n.length]), Buffer.from(n), Buffer.from([v.length]), Buffer.from(v)]));
}

describe('HTTP/2 edges', () => {
  it('a stream reset in the same write as its HEADERS (h2c) leaves the proxy up and serving', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(h2cConfig(origin.address));
    const cancel = Buffer.alloc(4);
    cancel.writeUInt32BE(8); // CANCEL
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.write(
            Buffer.concat([
              Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
              frame(4, 0, 0),
              frame(1, 0x5, 1, hpack([[':method', 'GET'], [':scheme', 'http'], [':authority', 'x'], [':path', '/']])),
              frame(3, 0, 1, cancel),
              frame(7, 0, 0, Buffer.alloc(8)), // GOAWAY: this client is done
            ]),
          );
        });
        s.on('data', () => undefined);
        s.on('error', reject);
        s.on('close', () => resolve());
        setTimeout(() => s.destroy(), 200).unref();
      });
    }
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const res = await h2Request(session, { ':path': '/after' });
    session.close();
    expect(res.status).toBe(200);
    expect(res.body.toString()).toContain('GET /after');
  });

  it('a client that cancels its HTTP/2 stream mid-response gets the upstream request cancelled too', async () => {
    let upstreamClosed!: (finished: boolean) => void;
    const closed = new Promise<boolean>((r) => (upstreamClosed = r));
    const origin = await startOrigin((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const timer = setInterval(() => res.write('tick\n'), 20);
      res.on('close', () => {
        clearInterval(timer);
        upstreamClosed(res.writableFinished);
      });
      setTimeout(() => res.end('done\n'), 10_000).unref();
    });
    const { port } = await startProxy(h2cConfig(origin.address));
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    onTestFinished(() => session.destroy());
    const stream = session.request({ ':path': '/slow' });
    await new Promise<void>((r) => stream.once('data', () => r()));
    const t0 = Date.now();
    stream.close(http2.constants.NGHTTP2_CANCEL);
    expect(await closed).toBe(false);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('Cookie crumbs of an HTTP/2 request reach an HTTP/1.1 origin as one field; :authority names the target, a Host that differs is a 400', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(h2cConfig(origin.address, '', '  - name: a\n    match: { host: a.test }\n    upstream: up\n'));
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    onTestFinished(() => session.close());
    const ok = await h2Request(session, { ':path': '/c', ':authority': 'a.test', cookie: ['a=1', 'b=2', 'c=3'] });
    expect(ok.status).toBe(200);
    const seen = origin.seen.at(-1)!;
    expect(seen.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'cookie')).toHaveLength(1);
    expect(seen.headers.cookie).toBe('a=1; b=2; c=3');
    expect(seen.headers.host).toBe('a.test');
    expect((await h2Request(session, { ':path': '/c', ':authority': 'a.test', host: 'a.test' })).status).toBe(200);
    expect((await h2Request(session, { ':path': '/c', ':authority': 'b.test', host: 'a.test' })).status).toBe(400);
    expect(origin.seen).toHaveLength(2);
  });

  it('a header list over max_header_size (RFC 9113 §6.5.2 size) is answered 431 on its stream, and the connection serves on', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(h2cConfig(origin.address).replace('log: { level: silent }', 'log: { level: silent }\nlimits: { max_header_size: 8kb }'));
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    onTestFinished(() => session.close());
    // 7 fields of 1000 bytes + 32 each, plus the pseudo-headers: under 8 KiB
    const under = Object.fromEntries(Array.from({ length: 7 }, (_, i) => [`x-f${i}`, 'v'.repeat(996)]));
    expect((await h2Request(session, { ':path': '/under', ...under })).status).toBe(200);
    const over = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`x-f${i}`, 'v'.repeat(996)]));
    const refused = await h2Request(session, { ':path': '/over', ...over });
    expect(refused.status).toBe(431);
    expect(refused.headers['x-request-id']).toBeTruthy();
    expect((await h2Request(session, { ':path': '/after' })).status).toBe(200);
    // Many small fields (node's default cap is 128 pairs) within the size: served.
    const many = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`x-m${i}`, 'v']));
    expect((await h2Request(session, { ':path': '/many', ...many })).status).toBe(200);
    expect(origin.seen.map((r) => r.url)).toEqual(['/under', '/after', '/many']);
  });

  it('an HTTP/2 upstream body followed by trailers arrives whole while the client reads slowly (back-pressure)', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024, 'abcdefghij');
    const server = http2.createServer();
    server.on('stream', (stream, headers) => {
      const body = big.subarray(0, Number(String(headers[':path']).split('/')[2]));
      stream.respond({ ':status': 200, 'content-type': 'application/octet-stream' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-sum': String(body.length) }));
      stream.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    onTestFinished(() => closeServer(server as unknown as http.Server));
    const { port } = await startProxy(h2cConfig(`127.0.0.1:${(server.address() as AddressInfo).port}`, '    protocol: http2\n'));
    for (const size of [30_000, 300_000, big.length]) {
      // A small window makes the proxy's writes to this client wait, so it pauses the upstream stream.
      const session = await h2Connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 4096 } });
      const stream = session.request({ ':path': `/big/${size}` });
      const trailers = new Promise<http2.IncomingHttpHeaders>((r) => stream.once('trailers', r));
      let n = 0;
      stream.pause();
      setTimeout(() => stream.resume(), 150);
      stream.on('data', (c: Buffer) => (n += c.length));
      await new Promise<void>((r) => stream.on('end', () => r()));
      expect(n).toBe(size);
      expect((await trailers)['x-sum']).toBe(String(size));
      session.close();
    }
  });
});

describe('HTTP/2 and scripts', () => {
  const TS = 'import type * as api from "scriptgate/runtime-api";\n';
  const routes = `  - name: exit
    match: { path_prefix: /exit }
    upstream: up
    access_by_script: exit.ts
  - name: hf
    match: { path_prefix: /hf }
    upstream: up
    header_filter_by_script: hf.ts
  - name: all
    upstream: up
`;
  const scripts = {
    'exit.ts': `${TS}export default function (ctx: api.AccessContext) {
      if (ctx.request.path === '/exit/hop') return ctx.exit(200, { headers: { 'keep-alive': '5', upgrade: 'x', te: 'trailers', 'proxy-connection': 'x', 'x-ok': '1' }, body: 'host ' + ctx.request.headers.get('host') });
      return ctx.exit(302, { headers: { location: ['/a', '/b'] } });
    }`,
    'hf.ts': `${TS}export default function (ctx: api.HeaderFilterContext) { ctx.response.headers.append('content-type', 'text/x-second'); }`,
  };

  it('an exit with hop-by-hop fields answers without them; one HTTP/2 cannot carry (two Locations) is a 500, and the process keeps serving', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(h2cConfig(origin.address, '', routes), scripts);
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const hop = await h2Request(session, { ':path': '/exit/hop', ':authority': 'shop.test' });
    expect(hop.status).toBe(200);
    expect(hop.text).toBe('host shop.test');
    expect(hop.headers['x-ok']).toBe('1');
    expect(hop.headers['keep-alive']).toBeUndefined();
    expect(hop.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect((await h2Request(session, { ':path': '/exit/two' })).status).toBe(500);
    expect((await h2Request(session, { ':path': '/plain' })).status).toBe(200);
  });

  it('a header_filter that adds a second Content-Type over HTTP/2 is a prompt 500, not a hang blamed on the upstream', async () => {
    const origin = await startOrigin();
    const logs = captureLogs();
    const { port } = await startProxy(h2cConfig(origin.address, '', routes).replace('log: { level: silent }', 'log: { level: info, access_log: false }'), scripts, logs.logger);
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const r = await h2Request(session, { ':path': '/hf/x' });
    expect(r.status).toBe(500);
    expect((await logs.waitFor((l) => l.msg === 'script failed')).code).toBe('PRX_ERR_SCRIPT_RESULT');
    expect(logs.lines.some((l) => /ejected/.test(String(l.msg)))).toBe(false);
    expect((await h2Request(session, { ':path': '/plain' })).status).toBe(200);
  });

  it('an upstream that dies mid-body resets the client stream with INTERNAL_ERROR, so the cut body is never taken as whole', async () => {
    const origin = await startOrigin((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('part1 ');
      setTimeout(() => res.socket?.destroy(), 50);
    });
    const { port } = await startProxy(h2cConfig(origin.address));
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const stream = session.request({ ':path': '/dies' });
    stream.on('data', () => undefined);
    stream.on('error', () => undefined);
    const code = await new Promise<number>((resolve) => {
      stream.on('close', () => resolve(stream.rstCode ?? -1));
    });
    expect(code).toBe(http2.constants.NGHTTP2_INTERNAL_ERROR);
  });
});

describe('a client that gives up mid-upload to an HTTP/2 upstream', () => {
  async function h2Upstream() {
    const server = http2.createServer();
    // Answers at once, without waiting for the body (as a gRPC server may).
    server.on('stream', (stream) => {
      stream.on('error', () => undefined);
      stream.respond({ ':status': 200 });
      stream.end('early');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    onTestFinished(() => closeServer(server as unknown as http.Server));
    return `127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('an HTTP/1.1 client that drops a half-sent body, and an h2c one that resets its POST, leave the process serving', async () => {
    const { port } = await startProxy(h2cConfig(await h2Upstream(), '    protocol: http2\n'));
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.write('POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc');
          s.destroy();
          resolve();
        });
        s.on('error', () => resolve());
      });
      const cancel = Buffer.alloc(4);
      cancel.writeUInt32BE(8);
      await new Promise<void>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0), frame(1, 0x4, 1, hpack([[':method', 'POST'], [':scheme', 'http'], [':authority', 'x'], [':path', '/grpc/x']])), frame(3, 0, 1, cancel)]));
          setTimeout(() => s.destroy(), 50);
        });
        s.on('error', () => undefined);
        s.on('close', () => resolve());
      });
    }
    // Give the upstream's answers to the reset streams time to arrive, then check the proxy is alive.
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    await new Promise((r) => setTimeout(r, 200));
    expect((await h2Request(session, { ':path': '/after' })).text).toBe('early');
  });
});
