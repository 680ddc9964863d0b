/**
 * Access logs and request ids: X-Request-Id on every kind of response, `log.access_log` with
 * chosen fields written to a file and to syslog (UDP and TCP receivers on loopback), and
 * `tenants.X.log_level` for script log lines (which carry the request's reqId).
 */
import dgram from 'node:dgram';
import { readFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { ProxyServer } from '../../src/control/proxy-server.ts';
import { flushLogger } from '../../src/observability/logger.ts';
import { request, startOrigin, writeConfig } from '../helpers/servers.ts';
import { startWsOrigin } from '../helpers/ws.ts';
import WebSocket from 'ws';

/** A proxy whose process log lines are kept in memory; `waitLine` resolves when a matching line is written. */
async function proxyWithLogs(yaml: string, files: Record<string, string> = {}, level = 'info') {
  const lines: Array<Record<string, unknown>> = [];
  const waiters = new Set<() => void>();
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      for (const w of waiters) w();
      cb();
    },
  });
  const file = writeConfig(yaml, files);
  const server = await ProxyServer.start(parseConfig(readFileSync(file, 'utf8'), file), pino({ level }, sink));
  onTestFinished(() => server.shutdown(false));
  const waitLine = (pred: (l: Record<string, unknown>) => boolean) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const check = () => {
        const found = lines.find(pred);
        if (!found) return;
        waiters.delete(check);
        resolve(found);
      };
      waiters.add(check);
      check();
    });
  return { port: server.ports[0]!, lines, waitLine, dir: path.dirname(file) };
}

const EXIT = `export default function access(ctx) {
  if (ctx.request.path === '/deny') return ctx.exit(401, { body: 'no\\n' });
  if (ctx.request.path === '/throw') throw new Error('bad');
}
`;

describe('request id and access logs', () => {
  it('X-Request-Id is on every response: proxied, script exit, script error, no route, dead upstream', async () => {
    const origin = await startOrigin((req, res) => {
      res.setHeader('x-request-id', 'from-upstream');
      res.end(`id=${req.headers['x-request-id']}`);
    });
    const { port } = await proxyWithLogs(
      `listen:
  - address: 127.0.0.1:0
tenants:
  t: { cpu_ms: 2000 }
upstreams:
  up: { targets: ["${origin.address}"] }
  dead: { targets: ["127.0.0.1:1"], retries: 0 }
routes:
  - match: { path_prefix: /dead }
    upstream: dead
  - match: { host: app.test }
    tenant: t
    upstream: up
    access_by_script: access.ts
`,
      { 'access.ts': EXIT },
    );
    const ok = await request(port, { host: 'app.test', path: '/x' });
    expect(ok.status).toBe(200);
    const id = ok.headers['x-request-id'] as string;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(ok.text).toBe(`id=${id}`); // the same id went upstream; the upstream's own copy was replaced
    expect(ok.rawHeaders.filter((h) => h.toLowerCase() === 'x-request-id')).toHaveLength(1);

    const mine = await request(port, { host: 'app.test', headers: { 'x-request-id': 'client-id-42' } });
    expect(mine.headers['x-request-id']).toBe('client-id-42');
    expect(mine.text).toBe('id=client-id-42');

    for (const [p, host, status] of [
      ['/deny', 'app.test', 401],
      ['/throw', 'app.test', 500],
      ['/dead', 'other.test', 502],
      ['/none', 'other.test', 404],
    ] as const) {
      const r = await request(port, { host, path: p, headers: { 'x-request-id': `rid-${status}` } });
      if (p !== '/none') expect(r.status).toBe(status);
      expect(r.headers['x-request-id'], p).toBe(`rid-${status}`);
    }
  });

  it('access_log.fields picks the fields; file: lines go to the file, not stdout', async () => {
    const origin = await startOrigin((_req, res) => {
      res.setHeader('x-cache', 'HIT');
      res.end('hello');
    });
    const { port, lines, dir } = await proxyWithLogs(`listen:
  - address: 127.0.0.1:0
log:
  access_log:
    fields: [reqId, method, path, status, bytes, bytes_in, route, tenant, upstream_ms, "request_header:user-agent", "response_header:x-cache"]
    file: logs/access.log
upstreams:
  up: { targets: ["${origin.address}"] }
routes:
  - name: web
    upstream: up
`);
    const r = await request(port, { method: 'POST', path: '/p?q=1', body: 'abcdef', headers: { 'user-agent': 'probe/1.0', 'x-request-id': 'rid-file' } });
    expect(r.status).toBe(200);
    const file = path.join(dir, 'logs/access.log');
    let text = '';
    // The line is written by pino's file stream: poll (bounded in time, not in turns, so a busy
    // machine does not fail the test) until it is there.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      flushLogger();
      text = existsSync(file) ? readFileSync(file, 'utf8') : '';
      if (text.includes('rid-file')) break;
      await new Promise((res) => setTimeout(res, 5));
    }
    expect(text).toContain('rid-file');
    const line = JSON.parse(text.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(line).toMatchObject({
      msg: 'access',
      level: 'info',
      reqId: 'rid-file',
      method: 'POST',
      path: '/p?q=1',
      status: 200,
      bytes: 5,
      bytes_in: 6,
      route: 'web',
      tenant: 'default',
      'request_header:user-agent': 'probe/1.0',
      'response_header:x-cache': 'HIT',
    });
    expect(typeof line.upstream_ms).toBe('number');
    expect(line).not.toHaveProperty('ms');
    expect(lines.filter((l) => l.msg === 'access')).toHaveLength(0);
  });

  it('a WebSocket\'s access line goes through access_log too (its file and fields), not to stdout', async () => {
    const origin = await startWsOrigin();
    const { port, lines, dir } = await proxyWithLogs(`listen:
  - address: 127.0.0.1:0
log:
  access_log:
    fields: [reqId, method, path, status, route, tenant, client_ip, bytes_in]
    file: logs/ws.log
upstreams:
  up: { targets: ["${origin.address}"] }
routes:
  - name: chat
    upstream: up
`);
    const ws = new WebSocket(`ws://127.0.0.1:${port}/chat`, ['chat'], { headers: { 'x-request-id': 'rid-ws' } });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.send('hi');
    await new Promise((r) => ws.once('message', r));
    ws.close();
    await new Promise((r) => ws.once('close', r));
    const file = path.join(dir, 'logs/ws.log');
    let text = '';
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      flushLogger();
      text = existsSync(file) ? readFileSync(file, 'utf8') : '';
      if (text.includes('rid-ws')) break;
      await new Promise((res) => setTimeout(res, 5));
    }
    const line = JSON.parse(text.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(line).toMatchObject({ msg: 'access', reqId: 'rid-ws', method: 'GET', path: '/chat', status: 101, route: 'chat', tenant: 'default', client_ip: '127.0.0.1' });
    expect(line.bytes_in).toBeGreaterThan(0);
    expect(lines.filter((l) => l.msg === 'access')).toHaveLength(0);
  });

  it('access_log.syslog over UDP: one RFC 5424 datagram per request', async () => {
    const rx = dgram.createSocket('udp4');
    await new Promise<void>((r) => rx.bind(0, '127.0.0.1', r));
    onTestFinished(() => new Promise<void>((r) => rx.close(() => r())));
    const got = new Promise<string>((resolve) => rx.on('message', (m) => resolve(m.toString())));
    const origin = await startOrigin();
    const { port } = await proxyWithLogs(`listen:
  - address: 127.0.0.1:0
log:
  access_log: { syslog: { address: "127.0.0.1:${(rx.address() as net.AddressInfo).port}", facility: local3, app_name: edge } }
upstreams:
  up: { targets: ["${origin.address}"] }
routes:
  - upstream: up
`);
    await request(port, { headers: { 'x-request-id': 'rid-udp' } });
    const msg = await got;
    // <PRI> = local3 (19) * 8 + info (6) = 158; VERSION 1; timestamp; host; app; procid; msgid; no structured data.
    const m = /^<158>1 (\S+) (\S+) edge (\d+) access - (\{.*\})$/.exec(msg)!;
    expect(m, msg).not.toBeNull();
    expect(new Date(m[1]!).toString()).not.toBe('Invalid Date');
    expect(Number(m[3])).toBe(process.pid);
    expect(JSON.parse(m[4]!)).toMatchObject({ msg: 'access', reqId: 'rid-udp', status: 200 });
  });

  it('access_log.syslog over TCP: octet-counted frames', async () => {
    let data = '';
    let arrived!: () => void;
    const two = new Promise<void>((r) => (arrived = r));
    const conns = new Set<net.Socket>();
    const rx = net.createServer((s) => {
      conns.add(s);
      s.on('data', (c: Buffer) => {
        data += c.toString();
        if ((data.match(/rid-tcp-/g) ?? []).length >= 2) arrived();
      });
    });
    await new Promise<void>((r) => rx.listen(0, '127.0.0.1', r));
    // The proxy's syslog connection lives as long as its process: cut it from this side.
    onTestFinished(() => new Promise<void>((r) => (rx.close(() => r()), conns.forEach((c) => c.destroy()))));
    const origin = await startOrigin();
    const { port } = await proxyWithLogs(`listen:
  - address: 127.0.0.1:0
log:
  access_log: { syslog: { address: "127.0.0.1:${(rx.address() as net.AddressInfo).port}", protocol: tcp } }
upstreams:
  up: { targets: ["${origin.address}"] }
routes:
  - upstream: up
`);
    await request(port, { headers: { 'x-request-id': 'rid-tcp-1' } });
    await request(port, { headers: { 'x-request-id': 'rid-tcp-2' } });
    await two;
    const frames: string[] = [];
    let rest = Buffer.from(data);
    while (rest.length) {
      const sp = rest.indexOf(0x20);
      const len = Number(rest.subarray(0, sp).toString());
      frames.push(rest.subarray(sp + 1, sp + 1 + len).toString());
      rest = rest.subarray(sp + 1 + len);
    }
    expect(frames).toHaveLength(2);
    for (const [i, f] of frames.entries()) expect(f).toMatch(new RegExp(`^<134>1 \\S+ \\S+ scriptgate \\d+ access - \\{.*"reqId":"rid-tcp-${i + 1}"`));
  });

  it('tenants.X.log_level: debug lines of a debug tenant appear, info lines of an error tenant do not; both carry reqId', async () => {
    const origin = await startOrigin();
    const script = `export default function access(ctx) { ctx.log.debug('dbg', { n: 1 }); ctx.log.info('inf'); ctx.log.error('err'); }\n`;
    const { port, lines, waitLine } = await proxyWithLogs(
      `listen:
  - address: 127.0.0.1:0
tenants:
  loud: { log_level: debug, cpu_ms: 2000 }
  quiet: { log_level: error, cpu_ms: 2000 }
upstreams:
  up: { targets: ["${origin.address}"] }
routes:
  - match: { host: loud.test }
    tenant: loud
    upstream: up
    access_by_script: a.ts
  - match: { host: quiet.test }
    tenant: quiet
    upstream: up
    access_by_script: a.ts
`,
      { 'a.ts': script },
    );
    await request(port, { host: 'loud.test', headers: { 'x-request-id': 'rid-loud' } });
    await request(port, { host: 'quiet.test', headers: { 'x-request-id': 'rid-quiet' } });
    await waitLine((l) => l.msg === 'access' && l.reqId === 'rid-quiet');
    await waitLine((l) => l.msg === 'err' && l.reqId === 'rid-quiet');
    const loud = lines.filter((l) => l.reqId === 'rid-loud' && l.tenant === 'loud' && l.msg !== 'access').map((l) => l.msg);
    const quiet = lines.filter((l) => l.reqId === 'rid-quiet' && l.tenant === 'quiet' && l.msg !== 'access').map((l) => l.msg);
    expect(loud).toEqual(['dbg', 'inf', 'err']);
    expect(quiet).toEqual(['err']);
    expect(lines.find((l) => l.msg === 'dbg')).toMatchObject({ n: 1, phase: 'access', route: expect.any(String) });
  });

  it('a phase call logging past 128 KiB keeps its request (lines past it dropped and said so), and log_bytes_per_s bounds a tenant\'s lines per second', async () => {
    const origin = await startOrigin();
    // 100 lines of an 8000-character message and 16000-character fields: what the per-line caps allow.
    const flood = `export default function access(ctx) { for (let i = 0; i < 100; i++) ctx.log.info('m' + i + 'x'.repeat(8000), { f: 'y'.repeat(16000) }); }\n`;
    const chatty = `export default function access(ctx) { ctx.log.info('c' + 'z'.repeat(3000)); }\n`;
    const { port, lines, waitLine } = await proxyWithLogs(
      `listen:
  - address: 127.0.0.1:0
tenants:
  flood: { cpu_ms: 5000, log_bytes_per_s: 0 }
  chatty: { cpu_ms: 2000, log_bytes_per_s: 10kb }
upstreams:
  up: { targets: ["${origin.address}"] }
routes:
  - match: { host: flood.test }
    tenant: flood
    upstream: up
    access_by_script: flood.ts
  - match: { host: chatty.test }
    tenant: chatty
    upstream: up
    access_by_script: chatty.ts
`,
      { 'flood.ts': flood, 'chatty.ts': chatty },
    );
    const res = await request(port, { host: 'flood.test', headers: { 'x-request-id': 'rid-flood' } });
    expect(res.status).toBe(200);
    const note = await waitLine((l) => l.reqId === 'rid-flood' && /ctx\.log calls dropped/.test(String(l.msg)));
    expect(note.level).toBe(40);
    const kept = lines.filter((l) => l.reqId === 'rid-flood' && /^m\d+x/.test(String(l.msg)));
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.length).toBeLessThan(100);
    expect(kept.reduce((n, l) => n + String(l.msg).length + String(l.f).length, 0)).toBeLessThanOrEqual(128 * 1024);
    // 3 KB a line at 10 KB/s: of ten requests in quick succession, most lines are dropped, with a warning.
    for (let i = 0; i < 10; i++) expect((await request(port, { host: 'chatty.test', headers: { 'x-request-id': `rid-c${i}` } })).status).toBe(200);
    const warned = await waitLine((l) => l.tenant === 'chatty' && /script log lines dropped over its log_bytes_per_s/.test(String(l.msg)));
    expect(warned.dropped).toBeGreaterThan(0);
    const written = lines.filter((l) => l.tenant === 'chatty' && /^cz/.test(String(l.msg))).length;
    expect(written).toBeGreaterThanOrEqual(3);
    expect(written).toBeLessThan(10);
  });
});
