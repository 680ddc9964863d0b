/**
 * WebSocket through the proxy with real `ws` clients and servers: frames both ways (a 5 MB binary
 * message for back-pressure), access scripts guarding the upgrade, the log phase at close, the
 * idle timeout, a tunnel surviving a hot reload and a graceful shutdown, and an upstream that
 * refuses the upgrade. Upgrades to anything else (h2c from curl --http2, unknown tokens) served as
 * plain requests, handshakes with a body refused, and a tunnel counted once in the metrics.
 * WebSocket over HTTP/2 is in protocols-ws-h2.test.ts.
 */
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { createReloader } from '../../src/control/reload.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { metricsText } from '../../src/observability/metrics.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { parsePrometheusText, sumOf } from '../helpers/prom-text.ts';
import { rawRequest, startOrigin, startProxy, statusOf } from '../helpers/servers.ts';
import { expectBigBinaryEcho, roundTrip, startWsOrigin } from '../helpers/ws.ts';

const TS = 'import type * as api from "scriptgate/runtime-api";\n';

function wsConfig(origin: string, route = '', limits = ''): string {
  return `listen:\n  - address: 127.0.0.1:0\n${limits}log: { level: silent }\nupstreams:\n  up:\n    targets: ["${origin}"]\nroutes:\n  - name: ws\n    upstream: up\n${route}`;
}

/** Opens a client and waits for `open` (rejects on an unexpected response). */
async function connect(port: number, path = '/chat', opts: WebSocket.ClientOptions = {}, protocols: string[] = ['chat']): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, protocols, { maxPayload: 16 << 20, ...opts });
  onTestFinished(() => ws.terminate());
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
    ws.once('error', reject);
  });
  return ws;
}

/** The status an upgrade attempt gets when the handshake fails (0 when it opens). */
function upgradeStatus(port: number, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/chat`, { headers });
    ws.once('open', () => {
      ws.terminate();
      resolve({ status: 0, body: '' });
    });
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString() }));
    });
    ws.once('error', (err) => {
      if (!/Unexpected server response/.test(err.message)) reject(err);
    });
  });
}

describe('WebSocket', () => {
  it('text and binary frames go both ways, a 5 MB binary message too; subprotocol, Host and X-Forwarded-* reach the origin', async () => {
    const origin = await startWsOrigin();
    const { port } = await startProxy(wsConfig(origin.address));
    const ws = await connect(port, '/chat?room=1');
    expect(ws.protocol).toBe('chat');
    const text = await roundTrip(ws, 'hello');
    expect(text).toEqual({ data: Buffer.from('o:hello'), isBinary: false });
    const small = Buffer.from([0, 1, 2, 255]);
    expect(await roundTrip(ws, small)).toEqual({ data: small, isBinary: true });
    await expectBigBinaryEcho(ws);
    const seen = origin.upgrades[0]!;
    expect(seen.url).toBe('/chat?room=1');
    expect(seen.headers.host).toBe(`127.0.0.1:${port}`);
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen.headers['x-forwarded-proto']).toBe('http');
    expect(seen.headers['sec-websocket-protocol']).toBe('chat');
    expect(seen.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    ws.close(1000, 'bye');
    const [code] = (await once(ws, 'close')) as [number];
    expect(code).toBe(1000);
  });

  it('an access script refuses an upgrade without a token (401, the origin never sees it) and admits one with it', async () => {
    const origin = await startWsOrigin();
    const { port } = await startProxy(wsConfig(origin.address, '    access_by_script: auth.ts\n'), {
      'auth.ts': `${TS}export default function (ctx: api.AccessContext) {
        if (ctx.request.headers.get('authorization') !== 'Bearer good') return ctx.exit(401, { body: 'token please\\n', headers: { 'www-authenticate': 'Bearer' } });
        ctx.request.headers.set('x-user', 'ann');
      }`,
    });
    expect(await upgradeStatus(port)).toEqual({ status: 401, body: 'token please\n' });
    expect(await upgradeStatus(port, { authorization: 'Bearer bad' })).toMatchObject({ status: 401 });
    expect(origin.upgrades).toHaveLength(0);
    const ws = await connect(port, '/chat', { headers: { authorization: 'Bearer good' } });
    expect((await roundTrip(ws, 'in')).data.toString()).toBe('o:in');
    expect(origin.upgrades).toHaveLength(1);
    expect(origin.upgrades[0]!.headers['x-user']).toBe('ann');
  });

  it('a rewrite redirect answers the upgrade with the redirect and opens no tunnel', async () => {
    const origin = await startWsOrigin();
    const { port } = await startProxy(wsConfig(origin.address, '    rewrite_by_script: moved.ts\n'), {
      'moved.ts': `${TS}export default function (ctx: api.RewriteContext) { ctx.redirect('https://elsewhere.test/chat', 307); }`,
    });
    const raw = await rawRequest(port, 'GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    expect(statusOf(raw.text)).toBe(307);
    expect(raw.text).toMatch(/\r\nlocation: https:\/\/elsewhere\.test\/chat\r\n/i);
    expect(raw.timedOut).toBe(false);
    expect(origin.upgrades).toHaveLength(0);
  });

  it('the log phase runs when the tunnel closes, with bytes both ways and the time it was open', async () => {
    const origin = await startWsOrigin();
    const logs = captureLogs();
    const { port } = await startProxy(
      wsConfig(origin.address, '    access_by_script: access.ts\n    log_by_script: log.ts\n'),
      {
        'access.ts': `${TS}export default function (ctx: api.AccessContext) { ctx.vars.user = 'ann'; }`,
        'log.ts': `${TS}export default function (ctx: api.LogContext) {
          ctx.log.info('ws closed', { status: ctx.response.status, sent: ctx.bytesSent, received: ctx.bytesReceived,
            open: ctx.timings.upstreamBody, total: ctx.timings.total, upstream: ctx.upstreamAddress, user: ctx.vars.user, error: ctx.error });
        }`,
      },
      logs.logger,
    );
    const ws = await connect(port);
    await roundTrip(ws, 'x'.repeat(1000));
    await roundTrip(ws, Buffer.alloc(20_000, 7));
    ws.close();
    await once(ws, 'close');
    const line = await logs.waitFor((l) => l.msg === 'ws closed');
    expect(line).toMatchObject({ status: 101, upstream: origin.address, user: 'ann', error: '' });
    // Frames carry a few bytes of framing (and the client's are masked): at least the payloads went each way.
    expect(line.sent as number).toBeGreaterThan(21_000);
    expect(line.received as number).toBeGreaterThan(21_000);
    expect(line.open as number).toBeGreaterThan(0);
    expect(line.total as number).toBeGreaterThanOrEqual(line.open as number);
    const access = await logs.waitFor((l) => l.msg === 'access' && l.websocket === true);
    expect(access).toMatchObject({ status: 101, route: 'ws', upstream: origin.address });
  });

  it('an idle tunnel is closed after websocket_idle_timeout; traffic keeps it open past client_header_timeout', async () => {
    const origin = await startWsOrigin();
    const logs = captureLogs();
    const { port } = await startProxy(wsConfig(origin.address, '', 'limits: { websocket_idle_timeout: 600ms, client_header_timeout: 300ms }\n').replace('log: { level: silent }\n', ''), {}, logs.logger);
    const ws = await connect(port);
    const t0 = Date.now();
    // Busy for longer than both timeouts: a message every 100 ms for 900 ms.
    while (Date.now() - t0 < 900) {
      await new Promise((r) => setTimeout(r, 100));
      await roundTrip(ws, 'ping');
    }
    expect(ws.readyState).toBe(WebSocket.OPEN);
    const idleFrom = Date.now();
    const [code] = (await once(ws, 'close')) as [number];
    expect(code).toBe(1006); // cut by the proxy, no close frame
    expect(Date.now() - idleFrom).toBeGreaterThanOrEqual(500);
    const access = await logs.waitFor((l) => l.msg === 'access' && l.websocket === true);
    expect(access.error).toBe('PRX_ERR_IDLE_TIMEOUT');
  });

  it('a WebSocket opened before a hot reload keeps working after it, on its old generation', async () => {
    const a = await startWsOrigin('a');
    const b = await startWsOrigin('b');
    const { port, server, file } = await startProxy(wsConfig(a.address));
    const before = await connect(port);
    expect((await roundTrip(before, 'one')).data.toString()).toBe('a:one');
    const oldGen = server.generation;
    writeFileSync(file, wsConfig(b.address));
    const result = await createReloader(server, file, createLogger('silent'))();
    expect(result.ok).toBe(true);
    expect(server.generation).not.toBe(oldGen);
    expect(oldGen.active).toBe(1); // pinned by the open tunnel
    expect((await roundTrip(before, 'two')).data.toString()).toBe('a:two');
    const after = await connect(port);
    expect((await roundTrip(after, 'three')).data.toString()).toBe('b:three');
    before.close();
    await once(before, 'close');
    expect((await roundTrip(after, 'four')).data.toString()).toBe('b:four');
  });

  it('an upstream that refuses the upgrade gets its response passed back, and the connection closes', async () => {
    const origin = await startOrigin((_req, res) => {
      res.writeHead(403, { 'content-type': 'text/plain', 'x-why': 'no sockets' });
      res.end('websockets are off\n');
    });
    const { port } = await startProxy(wsConfig(origin.address));
    expect(await upgradeStatus(port)).toEqual({ status: 403, body: 'websockets are off\n' });
    const raw = await rawRequest(port, 'GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    expect(statusOf(raw.text)).toBe(403);
    expect(raw.text).toMatch(/\r\nx-why: no sockets\r\n/);
    // The proxy's own fields, as on any proxied answer.
    expect(raw.text).toMatch(/\r\nx-request-id: [0-9a-f-]{36}\r\n/);
    expect(raw.text).toMatch(/\r\ndate: /i);
    expect(raw.text.endsWith('websockets are off\n')).toBe(true);
    expect(raw.timedOut).toBe(false);
  });

  it('a dead first target is skipped (connect failover); no target at all is a 502', async () => {
    const origin = await startWsOrigin();
    const dead = await startOrigin();
    const deadAddress = dead.address;
    await new Promise<void>((r) => dead.server.close(() => r()));
    const { port } = await startProxy(`listen:\n  - address: 127.0.0.1:0\nlog: { level: silent }\nupstreams:\n  up:\n    targets: ["${deadAddress}", "${origin.address}"]\n    retries: 1\n    passive: { max_fails: 0 }\n  gone:\n    targets: ["${deadAddress}"]\nroutes:\n  - upstream: up\n  - match: { path_prefix: /gone }\n    upstream: gone\n`);
    for (let i = 0; i < 3; i++) {
      const ws = await connect(port);
      expect((await roundTrip(ws, `m${i}`)).data.toString()).toBe(`o:m${i}`);
      ws.terminate();
    }
    const raw = await rawRequest(port, 'GET /gone HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    expect(statusOf(raw.text)).toBe(502);
  });

  it('graceful shutdown waits for an open tunnel to close; a hard stop cuts it', async () => {
    const origin = await startWsOrigin();
    const { port, server } = await startProxy(wsConfig(origin.address));
    const ws = await connect(port);
    let shutDown = false;
    const stopping = server.shutdown(true, 10_000).then(() => (shutDown = true));
    // What the drain does to idle keep-alive connections after its grace period must spare tunnels.
    server.listeners[0]!.http1.closeIdleConnections();
    // Still tunnelled while the proxy drains.
    expect((await roundTrip(ws, 'still here')).data.toString()).toBe('o:still here');
    expect(shutDown).toBe(false);
    ws.close();
    await stopping;
    expect(shutDown).toBe(true);

    const second = await startProxy(wsConfig(origin.address));
    const ws2 = await connect(second.port);
    const closed = once(ws2, 'close');
    await second.server.shutdown(true, 200);
    await closed;
  });
});

describe('Upgrade requests that are not WebSocket, and handshakes with a body', () => {
  const H2C_UPGRADE = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n';

  it('an h2c upgrade with a body (curl --http2) is a plain HTTP/1.1 request: body proxied, header_filter run, Upgrade and HTTP2-Settings not forwarded, keep-alive kept', async () => {
    const origin = await startOrigin((req, res, body) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`got ${req.method} ${req.url} [${body.toString()}]`);
    });
    const { port } = await startProxy(wsConfig(origin.address, '    header_filter_by_script: hf.ts\n'), {
      'hf.ts': `${TS}export default function (ctx: api.HeaderFilterContext) { ctx.response.headers.set('x-filtered', 'yes'); }`,
    });
    // The body, then a pipelined second request on the same connection.
    const raw = await rawRequest(
      port,
      `POST /up?x=1 HTTP/1.1\r\nHost: h.test\r\n${H2C_UPGRADE}Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello` + 'GET /second HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n',
    );
    expect(raw.timedOut).toBe(false);
    const [first, second] = raw.text.split(/(?=HTTP\/1\.1 \d{3} )/);
    expect(statusOf(first!)).toBe(200);
    expect(first).not.toMatch(/\r\nupgrade:/i);
    expect(first).toMatch(/\r\nx-filtered: yes\r\n/i);
    expect(first).toContain('got POST /up?x=1 [hello]');
    expect(statusOf(second!)).toBe(200);
    expect(second).toContain('got GET /second []');
    expect(origin.seen).toHaveLength(2);
    const seen = origin.seen.find((r) => r.method === 'POST')!;
    expect(seen.body.toString()).toBe('hello');
    expect(seen.headers.upgrade).toBeUndefined();
    expect(seen.headers['http2-settings']).toBeUndefined();
    expect(String(seen.headers.connection ?? '')).not.toMatch(/upgrade/i);
    expect(seen.headers['content-type']).toBe('text/plain');
  });

  it('an h2c upgrade pipelined behind a slow request is answered after it, in order', async () => {
    const origin = await startOrigin((req, res, body) => {
      const answer = () => res.end(`${req.url} [${body.toString()}]`);
      if (req.url === '/slow') setTimeout(answer, 200);
      else answer();
    });
    const { port } = await startProxy(wsConfig(origin.address));
    const raw = await rawRequest(port, `GET /slow HTTP/1.1\r\nHost: h.test\r\n\r\nPOST /up HTTP/1.1\r\nHost: h.test\r\n${H2C_UPGRADE}Content-Length: 2\r\nConnection: Upgrade, HTTP2-Settings, close\r\n\r\nhi`);
    expect(raw.timedOut).toBe(false);
    const [first, second] = raw.text.split(/(?=HTTP\/1\.1 \d{3} )/);
    expect(first).toContain('/slow []');
    expect(second).toContain('/up [hi]');
  });

  it('an unknown Upgrade token gets the plain response; Connection: close next to upgrade still closes', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(wsConfig(origin.address));
    const raw = await rawRequest(port, 'GET /thing HTTP/1.1\r\nHost: h.test\r\nConnection: upgrade, close\r\nUpgrade: TLS/1.2, foo\r\n\r\n');
    expect(raw.timedOut).toBe(false);
    expect(statusOf(raw.text)).toBe(200);
    expect(raw.text).toMatch(/\r\nconnection: close\r\n/i);
    expect(raw.text).toContain('origin:o GET /thing');
    expect(origin.seen[0]!.headers.upgrade).toBeUndefined();
  });

  it('curl --http2 over cleartext gets an HTTP/1.1 answer with its body proxied, on a plain listener and on one with http2: true', async () => {
    const origin = await startOrigin((req, res, body) => res.end(`${req.method} ${body.length}`));
    const { execFile } = await import('node:child_process');
    for (const listener of ['', '    http2: true\n']) {
      const { port } = await startProxy(wsConfig(origin.address).replace('  - address: 127.0.0.1:0\n', `  - address: 127.0.0.1:0\n${listener}`));
      const out = await new Promise<string>((resolve, reject) =>
        execFile('curl', ['-sS', '--http2', '--max-time', '5', '-d', 'hello', '-w', '\n%{http_version} %{http_code}', `http://127.0.0.1:${port}/c`], (err, stdout) => (err ? reject(err) : resolve(stdout))),
      );
      expect(out).toBe('POST 5\n1.1 200');
    }
    expect(origin.seen).toHaveLength(2);
    expect(origin.seen.map((r) => r.headers.upgrade)).toEqual([undefined, undefined]);
  });

  it('a WebSocket handshake with a body gets 400 and never reaches the origin', async () => {
    const origin = await startWsOrigin();
    const { port } = await startProxy(wsConfig(origin.address));
    const key = 'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
    const sized = await rawRequest(port, `POST /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${key}Content-Length: 5\r\n\r\nhello`);
    expect(sized.timedOut).toBe(false);
    expect(statusOf(sized.text)).toBe(400);
    expect(sized.text).toMatch(/a WebSocket handshake has no body/);
    const chunked = await rawRequest(port, `GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${key}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
    expect(statusOf(chunked.text)).toBe(400);
    expect(origin.upgrades).toHaveLength(0);
    // Content-Length: 0 is no body: that handshake goes through.
    const ws = await connect(port, '/chat', { headers: { 'content-length': '0' } });
    expect((await roundTrip(ws, 'ok')).data.toString()).toBe('o:ok');
  });

  it('a refused upgrade still runs the log phase once the client has its answer', async () => {
    const origin = await startWsOrigin();
    const logs = captureLogs();
    const { port } = await startProxy(
      wsConfig(origin.address, '    access_by_script: deny.ts\n    log_by_script: log.ts\n'),
      {
        'deny.ts': `${TS}export default function (ctx: api.AccessContext) { return ctx.exit(403, { body: 'no\\n' }); }`,
        'log.ts': `${TS}export default function (ctx: api.LogContext) { ctx.log.info('refused upgrade logged', { status: ctx.response.status }); }`,
      },
      logs.logger,
    );
    expect(await upgradeStatus(port)).toEqual({ status: 403, body: 'no\n' });
    expect(await logs.waitFor((l) => l.msg === 'refused upgrade logged')).toMatchObject({ status: 403 });
  });
});

describe('WebSocket connections in scriptgate_active_connections', () => {
  it('a tunnel counts once, as websocket, and not as http1 as well; it is gone when the tunnel closes', async () => {
    const origin = await startWsOrigin();
    const { port } = await startProxy(wsConfig(origin.address).replace('log: { level: silent }\n', 'log: { level: silent }\nadmin: { address: 127.0.0.1:0 }\n'));
    const active = async (protocol: string) => sumOf(parsePrometheusText(await metricsText(false)), 'scriptgate_active_connections', { protocol });
    const ws = await connect(port);
    await roundTrip(ws, 'hi');
    expect(await active('websocket')).toBe(1);
    expect(await active('http1')).toBe(0);
    // A kept-alive HTTP/1.1 connection beside it counts as http1.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    onTestFinished(() => agent.destroy());
    await new Promise<void>((resolve, reject) => http.get({ host: '127.0.0.1', port, path: '/plain', agent }, (res) => res.resume().on('end', resolve)).on('error', reject));
    expect(await active('http1')).toBe(1);
    expect(await active('websocket')).toBe(1);
    ws.close();
    await once(ws, 'close');
    await expect.poll(() => active('websocket')).toBe(0);
    expect(await active('http1')).toBe(1);
  });
});
