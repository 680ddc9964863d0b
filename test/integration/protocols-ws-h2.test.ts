/**
 * WebSocket over HTTP/2 (RFC 8441 extended CONNECT) through the proxy, with a node:http2 client
 * whose stream is framed by `ws`, and a real `ws` origin reached by an HTTP/1.1 Upgrade: frames
 * both ways (a 5 MB message for flow control), h2c and TLS h2, access scripts and the log phase,
 * upstream refusals and failures (passed back, 502, 504), the idle timeout, plain CONNECT and
 * unknown protocols, and how the tunnel is counted in the metrics.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { metricsText } from '../../src/observability/metrics.ts';
import { makePki, type Pki } from '../helpers/certs.ts';
import { h2Connect, h2Request } from '../helpers/h2-client.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { parsePrometheusText, sumOf } from '../helpers/prom-text.ts';
import { startOrigin, startProxy } from '../helpers/servers.ts';
import { expectBigBinaryEcho, h2WebSocket, roundTrip, startWsOrigin } from '../helpers/ws.ts';

const TS = 'import type * as api from "scriptgate/runtime-api";\n';

function h2Config(origin: string, opts: { route?: string; limits?: string; upstream?: string; top?: string } = {}): string {
  return `listen:
  - address: 127.0.0.1:0
    http2: true
${opts.limits ?? ''}${opts.top ?? ''}log: { level: silent }
upstreams:
  up:
    targets: ["${origin}"]
${opts.upstream ?? ''}routes:
  - name: ws
    upstream: up
${opts.route ?? ''}`;
}

/** A plain TCP server that runs `onSocket` for each connection (an origin that misbehaves). */
async function startRawOrigin(onSocket: (s: net.Socket) => void): Promise<string> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    onSocket(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onTestFinished(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

describe('WebSocket over HTTP/2 (RFC 8441)', () => {
  it('h2c: 200, then text and binary frames both ways (a 5 MB message too); the origin gets an HTTP/1.1 Upgrade with Host, subprotocol and X-Forwarded-*', async () => {
    const origin = await startWsOrigin();
    const { port } = await startProxy(h2Config(origin.address));
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const opened = await h2WebSocket(session, '/chat?room=1', { authority: 'ws.test', protocols: ['chat'] });
    expect(session.remoteSettings.enableConnectProtocol).toBe(true);
    expect(opened.status).toBe(200);
    expect(opened.headers['sec-websocket-protocol']).toBe('chat');
    expect(opened.headers['sec-websocket-accept']).toBeUndefined();
    const ws = opened.ws!;
    expect(await roundTrip(ws, 'hello')).toEqual({ data: Buffer.from('o:hello'), isBinary: false });
    await expectBigBinaryEcho(ws);

    const seen = origin.upgrades[0]!;
    expect(seen.method).toBe('GET');
    expect(seen.url).toBe('/chat?room=1');
    expect(seen.headers.host).toBe('ws.test');
    expect(seen.headers.upgrade).toBe('websocket');
    expect(seen.headers['sec-websocket-version']).toBe('13');
    expect(seen.headers['sec-websocket-protocol']).toBe('chat');
    expect(seen.headers['x-forwarded-proto']).toBe('http');
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(Object.keys(seen.headers).some((h) => h.startsWith(':'))).toBe(false);

    // Other streams on the same connection are served while the tunnel is open (ws answers a plain GET with 426).
    expect((await h2Request(session, { ':path': '/plain', ':authority': 'ws.test' })).status).toBe(426);
    expect((await roundTrip(ws, 'still')).data.toString()).toBe('o:still');
    ws.close(1000, 'bye');
    const [code] = (await once(ws, 'close')) as [number];
    expect(code).toBe(1000);
  });

  it('TLS h2 (ALPN): the tunnel works the same, with X-Forwarded-Proto https', async () => {
    const pki: Pki = makePki();
    const leaf = pki.leaf('ws', ['ws.example.test']);
    const origin = await startWsOrigin();
    const { port } = await startProxy(h2Config(origin.address).replace('    http2: true\n', `    http2: true\n    tls:\n      certificates:\n        - { cert: ${leaf.cert}, key: ${leaf.key} }\n`));
    const session = await h2Connect(`https://127.0.0.1:${port}`, { servername: 'ws.example.test', ca: readFileSync(pki.ca.cert) });
    expect(session.alpnProtocol).toBe('h2');
    const opened = await h2WebSocket(session, '/secure', { authority: 'ws.example.test' });
    expect(opened.status).toBe(200);
    expect((await roundTrip(opened.ws!, 'tls')).data.toString()).toBe('o:tls');
    expect(origin.upgrades[0]!.headers['x-forwarded-proto']).toBe('https');
  });

  it('an access script refuses the CONNECT (401 with its body, the origin never sees it) and admits one with a token; the log phase and access line run at close', async () => {
    const origin = await startWsOrigin();
    const logs = captureLogs();
    const { port } = await startProxy(
      h2Config(origin.address, { route: '    access_by_script: auth.ts\n    log_by_script: log.ts\n' }),
      {
        'auth.ts': `${TS}export default function (ctx: api.AccessContext) {
          if (ctx.request.headers.get('authorization') !== 'Bearer good') return ctx.exit(401, { body: 'token please\\n', headers: { 'www-authenticate': 'Bearer' } });
          ctx.request.headers.set('x-user', 'ann');
          ctx.vars.seen = ctx.request.method + ' ' + ctx.request.httpVersion;
        }`,
        'log.ts': `${TS}export default function (ctx: api.LogContext) {
          ctx.log.info('h2 ws closed', { status: ctx.response.status, sent: ctx.bytesSent, received: ctx.bytesReceived, seen: ctx.vars.seen, error: ctx.error });
        }`,
      },
      logs.logger,
    );
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const refused = await h2WebSocket(session, '/chat');
    expect(refused.status).toBe(401);
    expect(refused.headers['www-authenticate']).toBe('Bearer');
    expect(refused.body).toBe('token please\n');
    expect(origin.upgrades).toHaveLength(0);
    expect(await logs.waitFor((l) => l.msg === 'h2 ws closed')).toMatchObject({ status: 401 });

    const opened = await h2WebSocket(session, '/chat', { headers: { authorization: 'Bearer good' } });
    expect(opened.status).toBe(200);
    expect((await roundTrip(opened.ws!, 'x'.repeat(1000))).data.toString()).toBe(`o:${'x'.repeat(1000)}`);
    expect(origin.upgrades[0]!.headers['x-user']).toBe('ann');
    opened.ws!.close();
    await once(opened.ws!, 'close');
    const line = await logs.waitFor((l) => l.msg === 'h2 ws closed' && l.status === 200);
    expect(line).toMatchObject({ seen: 'GET 2.0', error: '' });
    expect(line.sent as number).toBeGreaterThan(1000);
    expect(line.received as number).toBeGreaterThan(1000);
    const access = await logs.waitFor((l) => l.msg === 'access' && l.websocket === true && l.status === 200);
    expect(access).toMatchObject({ method: 'CONNECT', path: '/chat', http2: true, route: 'ws', upstream: origin.address });
  });

  it('an exit whose head HTTP/2 cannot carry (two content-type values) is a 500 on the stream, not a reset', async () => {
    const origin = await startWsOrigin();
    const logs = captureLogs();
    const { port } = await startProxy(
      h2Config(origin.address, { route: '    access_by_script: twice.ts\n    log_by_script: log.ts\n' }),
      {
        'twice.ts': `${TS}export default function (ctx: api.AccessContext) { return ctx.exit(403, { body: 'no', headers: { 'content-type': ['text/plain', 'text/html'] } }); }`,
        'log.ts': `${TS}export default function (ctx: api.LogContext) { ctx.log.info('closed', { status: ctx.response.status }); }`,
      },
      logs.logger,
    );
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const res = await h2WebSocket(session, '/chat');
    expect(res.status).toBe(500);
    expect(res.body).toMatch(/^500 /);
    expect(origin.upgrades).toHaveLength(0);
    expect(await logs.waitFor((l) => l.msg === 'closed')).toMatchObject({ status: 500 });
    // The connection is still good for the next stream.
    expect((await h2Request(session, { ':path': '/plain' })).status).toBe(500);
  });

  it("a script's 2xx answer to an HTTP/2 WebSocket handshake (which would read as an accepted tunnel) is a 500", async () => {
    const origin = await startWsOrigin();
    const { port } = await startProxy(h2Config(origin.address, { route: '    access_by_script: ok.ts\n' }), {
      'ok.ts': `${TS}export default function (ctx: api.AccessContext) { return ctx.exit(200, { body: 'fine' }); }`,
    });
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const res = await h2WebSocket(session, '/chat');
    expect(res.status).toBe(500);
    expect(res.body).toMatch(/would accept the tunnel/);
    expect(origin.upgrades).toHaveLength(0);
  });

  it('an upstream that refuses the upgrade has its answer passed back; a 2xx without switching is a 502, as is a 101 with a wrong Sec-WebSocket-Accept', async () => {
    const refusing = await startOrigin((_req, res) => {
      res.writeHead(403, { 'content-type': 'text/plain', 'x-why': 'no sockets' });
      res.end('websockets are off\n');
    });
    const ok200 = await startOrigin();
    const badAccept = await startRawOrigin((s) => s.once('data', () => s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bm90IHRoZSByaWdodCBvbmU=\r\n\r\n')));
    const { port } = await startProxy(`listen:
  - address: 127.0.0.1:0
    http2: true
log: { level: silent }
upstreams:
  refusing: { targets: ["${refusing.address}"] }
  ok200: { targets: ["${ok200.address}"] }
  bad: { targets: ["${badAccept}"] }
routes:
  - match: { path_prefix: /refusing }
    upstream: refusing
  - match: { path_prefix: /ok200 }
    upstream: ok200
  - match: { path_prefix: /bad }
    upstream: bad
`);
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const refused = await h2WebSocket(session, '/refusing');
    expect(refused.status).toBe(403);
    expect(refused.headers['x-why']).toBe('no sockets');
    expect(refused.body).toBe('websockets are off\n');
    const notSwitched = await h2WebSocket(session, '/ok200');
    expect(notSwitched.status).toBe(502);
    expect(ok200.seen[0]!.headers.upgrade).toBe('websocket');
    expect((await h2WebSocket(session, '/bad')).status).toBe(502);
  });

  it('no target is a 502; no answer to the upgrade within timeouts.read is a 504', async () => {
    const dead = await startOrigin();
    const deadAddress = dead.address;
    await new Promise<void>((r) => dead.server.close(() => r()));
    const silent = await startRawOrigin(() => undefined);
    const { port } = await startProxy(`listen:
  - address: 127.0.0.1:0
    http2: true
log: { level: silent }
upstreams:
  gone: { targets: ["${deadAddress}"] }
  silent: { targets: ["${silent}"], timeouts: { read: 300ms } }
routes:
  - match: { path_prefix: /gone }
    upstream: gone
  - match: { path_prefix: /silent }
    upstream: silent
`);
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    expect((await h2WebSocket(session, '/gone')).status).toBe(502);
    const t0 = Date.now();
    expect((await h2WebSocket(session, '/silent')).status).toBe(504);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
  });

  it('an idle tunnel is reset after websocket_idle_timeout; traffic keeps it open', async () => {
    const origin = await startWsOrigin();
    const logs = captureLogs();
    const { port } = await startProxy(h2Config(origin.address, { limits: 'limits: { websocket_idle_timeout: 500ms }\n' }).replace('log: { level: silent }\n', ''), {}, logs.logger);
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const { ws } = await h2WebSocket(session, '/chat');
    const t0 = Date.now();
    while (Date.now() - t0 < 800) {
      await new Promise((r) => setTimeout(r, 100));
      await roundTrip(ws!, 'ping');
    }
    expect(ws!.readyState).toBe(WebSocket.OPEN);
    const idleFrom = Date.now();
    const [code] = (await once(ws!, 'close')) as [number];
    expect(code).toBe(1006);
    expect(Date.now() - idleFrom).toBeGreaterThanOrEqual(400);
    const access = await logs.waitFor((l) => l.msg === 'access' && l.websocket === true);
    expect(access.error).toBe('PRX_ERR_IDLE_TIMEOUT');
    // The connection itself lives on.
    expect((await h2WebSocket(session, '/again')).status).toBe(200);
  });

  it('a plain CONNECT gets 405 and a :protocol other than websocket 501; a route that takes no GET gets 404', async () => {
    const origin = await startWsOrigin();
    const { port } = await startProxy(h2Config(origin.address, { route: '    match: { methods: [POST] }\n' }));
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const plain = await h2Request(session, { ':method': 'CONNECT', ':authority': 'example.test:443' });
    expect(plain.status).toBe(405);
    expect(plain.headers.allow).toMatch(/GET/);
    const other = await h2WebSocket(session, '/x', { headers: { ':protocol': 'connect-udp' } });
    expect(other.status).toBe(501);
    expect((await h2WebSocket(session, '/chat')).status).toBe(404);
    expect(origin.upgrades).toHaveLength(0);
  });

  it('the tunnel is a stream of an h2 connection: counted as that connection (h2), not as websocket or http1', async () => {
    const origin = await startWsOrigin();
    const { port } = await startProxy(h2Config(origin.address, { top: 'admin: { address: 127.0.0.1:0 }\n' }));
    const active = async (protocol: string) => sumOf(parsePrometheusText(await metricsText(false)), 'scriptgate_active_connections', { protocol });
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const { ws } = await h2WebSocket(session, '/chat');
    await roundTrip(ws!, 'hi');
    expect(await active('h2')).toBe(1);
    expect(await active('websocket')).toBe(0);
    expect(await active('http1')).toBe(0);
  });
});
