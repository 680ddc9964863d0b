import https from 'node:https';
import type net from 'node:net';
import type tls from 'node:tls';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { closeServer, request, writeConfig } from '../helpers/servers.ts';
import { createTestCa, type Pem, type TestCa } from '../helpers/certs.ts';
import { parseConfig } from '../../src/config/load.ts';
import { ProxyServer } from '../../src/control/proxy-server.ts';

interface TlsOrigin {
  address: string;
  /** One entry per request: SNI the client sent, Host header, client certificate CN ('' if none). */
  seen: Array<{ sni: string; host: string; clientCn: string }>;
  /** TLS connections accepted, by SNI. */
  connections: Map<string, number>;
}

let ca: TestCa;
let leaf: Pem;
let client: Pem;

beforeAll(() => {
  ca = createTestCa();
  leaf = ca.issue('origin', 'DNS:one.one.one.one,DNS:two.example,DNS:localhost,IP:127.0.0.1');
  client = ca.issue('proxy-client', 'DNS:proxy.internal', 'clientAuth');
});

/** HTTPS origin with the CA's leaf; `mtls` demands a client certificate from the CA. */
async function startTlsOrigin(name: string, opts: { mtls?: boolean; onlyHost?: string } = {}): Promise<TlsOrigin> {
  const seen: TlsOrigin['seen'] = [];
  const connections = new Map<string, number>();
  const server = https.createServer({ cert: leaf.cert, key: leaf.key, ...(opts.mtls ? { ca: ca.cert, requestCert: true, rejectUnauthorized: true } : {}) }, (req, res) => {
    const socket = req.socket as tls.TLSSocket;
    const peer = socket.getPeerCertificate?.();
    seen.push({ sni: (socket as tls.TLSSocket & { servername?: string }).servername || '', host: req.headers.host ?? '', clientCn: (peer?.subject?.CN as string | undefined) ?? '' });
    req.resume();
    req.on('end', () => {
      if (opts.onlyHost && req.headers.host !== opts.onlyHost) return void res.writeHead(403).end('forbidden host\n');
      res.writeHead(200, { 'x-origin': name }).end(`${name}\n`);
    });
  });
  server.on('secureConnection', (s: tls.TLSSocket & { servername?: string }) => connections.set(s.servername || '', (connections.get(s.servername || '') ?? 0) + 1));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onTestFinished(() => closeServer(server));
  return { address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, seen, connections };
}

/** A proxy from YAML whose log lines are collected in `lines`. */
async function startLoggedProxy(yaml: string, dir?: string): Promise<{ port: number; lines: Array<Record<string, unknown>> }> {
  const file = dir ? path.join(dir, 'scriptgate.yaml') : writeConfig(yaml);
  if (dir) writeFileSync(file, yaml);
  const loaded = parseConfig(readFileSync(file, 'utf8'), file);
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const server = await ProxyServer.start(loaded, pino({ level: 'info' }, sink));
  onTestFinished(() => server.shutdown(false));
  return { port: server.ports[0]!, lines };
}

function config(target: string, tlsYaml: string): string {
  return `listen:\n  - address: 127.0.0.1:0\nlog: { access_log: false }\nupstreams:\n  up:\n    targets: ["${target}"]\n    tls: ${tlsYaml}\nroutes:\n  - upstream: up\n`;
}

describe('TLS to upstreams', () => {
  it('https target with SNI one.one.one.one and a custom CA: 200, origin saw the SNI', async () => {
    const o = await startTlsOrigin('o');
    const { port } = await startLoggedProxy(config(o.address, `{ sni: one.one.one.one, ca: "${ca.certPath}" }`));
    const res = await request(port, { host: 'one.one.one.one' });
    expect(res.status).toBe(200);
    expect(o.seen[0]!.sni).toBe('one.one.one.one');
  });

  it('wrong SNI → 502 with a log line naming the name mismatch', async () => {
    const o = await startTlsOrigin('o');
    const { port, lines } = await startLoggedProxy(config(o.address, `{ sni: wrong.example, ca: "${ca.certPath}" }`));
    const res = await request(port);
    expect(res.status).toBe(502);
    expect(o.seen).toHaveLength(0);
    const line = lines.find((l) => l.code === 'PRX_ERR_UPSTREAM_TLS');
    expect(line).toMatchObject({ level: 40, upstream: 'up', target: o.address });
    expect(String(line!.err)).toMatch(/TLS handshake failed: Hostname\/IP does not match certificate's altnames.*wrong\.example/);
  });

  it('untrusted certificate (no CA configured) → 502 with a log line naming the verification failure', async () => {
    const o = await startTlsOrigin('o');
    const { port, lines } = await startLoggedProxy(config(o.address, '{ sni: one.one.one.one }'));
    expect((await request(port)).status).toBe(502);
    const line = lines.find((l) => l.code === 'PRX_ERR_UPSTREAM_TLS');
    expect(String(line?.err)).toMatch(/TLS handshake failed: unable to (get local issuer certificate|verify the first certificate)/);
  });

  it('verify: false accepts the untrusted certificate', async () => {
    const o = await startTlsOrigin('o');
    const { port } = await startLoggedProxy(config(o.address, '{ sni: one.one.one.one, verify: false }'));
    expect((await request(port)).status).toBe(200);
  });

  it('mTLS: with tls.cert/key the origin sees the client certificate; without, 502', async () => {
    const o = await startTlsOrigin('o', { mtls: true });
    const withCert = await startLoggedProxy(config(o.address, `{ sni: one.one.one.one, ca: "${ca.certPath}", cert: "${client.certPath}", key: "${client.keyPath}" }`));
    const res = await request(withCert.port);
    expect(res.status).toBe(200);
    expect(o.seen[0]!.clientCn).toBe('proxy-client');
    const without = await startLoggedProxy(config(o.address, `{ sni: one.one.one.one, ca: "${ca.certPath}" }`));
    expect((await request(without.port)).status).toBe(502);
    expect(o.seen).toHaveLength(1);
  });

  it("the TLS name is the upstream's, never the client's Host: tls.sni whatever the Host, else (an IP target) no SNI and a check against the IP, on one kept-alive connection", async () => {
    const o = await startTlsOrigin('o');
    const named = await startLoggedProxy(config(o.address, `{ sni: one.one.one.one, ca: "${ca.certPath}" }`));
    for (const host of ['two.example', 'evil.test', 'localhost']) expect((await request(named.port, { host })).status).toBe(200);
    expect(o.seen.map((s) => s.sni)).toEqual(['one.one.one.one', 'one.one.one.one', 'one.one.one.one']);
    // An IP target without tls.sni: the certificate has IP:127.0.0.1, so any Host works, with no SNI and no reconnect per Host.
    const ip = await startTlsOrigin('ip');
    const bare = await startLoggedProxy(config(ip.address, `{ ca: "${ca.certPath}" }`));
    for (const host of ['two.example', 'one.one.one.one', 'two.example', 'localhost']) expect((await request(bare.port, { host })).status).toBe(200);
    expect(ip.seen.map((s) => s.sni)).toEqual(['', '', '', '']);
    expect(Object.fromEntries(ip.connections)).toEqual({ '': 1 });
  });

  it('an IP target whose certificate names only a host is refused even when the client sends that Host (no verification by Host)', async () => {
    const nameOnly = ca.issue('name-only', 'DNS:origin.test');
    const server = https.createServer({ cert: nameOnly.cert, key: nameOnly.key }, (_req, res) => res.end('reached\n'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    onTestFinished(() => closeServer(server));
    const address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    const bare = await startLoggedProxy(config(address, `{ ca: "${ca.certPath}" }`));
    expect((await request(bare.port, { host: 'origin.test' })).status).toBe(502);
    const withSni = await startLoggedProxy(config(address, `{ sni: origin.test, ca: "${ca.certPath}" }`));
    expect((await request(withSni.port, { host: 'anything.test' })).status).toBe(200);
  });

  it('timeouts.connect covers the TLS handshake and is kept to the millisecond: a silent origin gets 504 after about 200 ms', async () => {
    const sockets = new Set<net.Socket>();
    const silent = (await import('node:net')).createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    onTestFinished(() => {
      for (const s of sockets) s.destroy();
      return closeServer(silent);
    });
    const address = `127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    const { port, lines } = await startLoggedProxy(config(address, '{ verify: false }').replace('    tls:', '    timeouts: { connect: 200ms }\n    retries: 0\n    tls:'));
    const t0 = performance.now();
    const res = await request(port);
    const ms = performance.now() - t0;
    expect(res.status).toBe(504);
    expect(ms).toBeGreaterThanOrEqual(190);
    // undici's own timer fired after about a second for settings of 100-300 ms
    expect(ms).toBeLessThan(800);
    expect(lines.some((l) => String(l.err ?? l.msg).includes('timeouts.connect (200 ms)'))).toBe(true);
  });

  it('two upstreams to one address with different SNI never share a connection', async () => {
    const o = await startTlsOrigin('o');
    const yaml = `listen:\n  - address: 127.0.0.1:0\nlog: { access_log: false }\nupstreams:\n  one:\n    targets: ["${o.address}"]\n    tls: { sni: one.one.one.one, ca: "${ca.certPath}" }\n  two:\n    targets: ["${o.address}"]\n    tls: { sni: two.example, ca: "${ca.certPath}" }\nroutes:\n  - { match: { path_prefix: /one/ }, upstream: one }\n  - { match: { path_prefix: /two/ }, upstream: two }\n`;
    const { port } = await startLoggedProxy(yaml);
    for (let i = 0; i < 6; i++) {
      const which = i % 2 ? 'two' : 'one';
      expect((await request(port, { path: `/${which}/${i}` })).status).toBe(200);
    }
    expect(o.seen.map((s) => s.sni)).toEqual(['one.one.one.one', 'two.example', 'one.one.one.one', 'two.example', 'one.one.one.one', 'two.example']);
    // Keep-alive: one connection per SNI, reused.
    expect(Object.fromEntries(o.connections)).toEqual({ 'one.one.one.one': 1, 'two.example': 1 });
  });

  it('the load-balancer example runs over HTTPS origins with SNI one.one.one.one and a local CA', async () => {
    const a = await startTlsOrigin('a', { onlyHost: 'one.one.one.one' });
    const b = await startTlsOrigin('b', { onlyHost: 'one.one.one.one' });
    const dir = path.dirname(writeConfig(''));
    const example = path.resolve(import.meta.dirname, '../../examples/load-balancer');
    cpSync(path.join(example, 'upstream-request-filter.ts'), path.join(dir, 'upstream-request-filter.ts'));
    cpSync(ca.certPath, path.join(dir, 'ca.pem'));
    const yaml = readFileSync(path.join(example, 'scriptgate.yaml'), 'utf8')
      .replace(/address: 127\.0\.0\.1:\d+/, 'address: 127.0.0.1:0')
      .replace(/targets: \[.*\]/, `targets: ["${a.address}", "${b.address}"]\n    tls: { sni: one.one.one.one, ca: ca.pem }`);
    expect(yaml).toContain('tls: { sni: one.one.one.one, ca: ca.pem }');
    const { port } = await startLoggedProxy(yaml, dir);
    const got: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await request(port);
      expect(res.status).toBe(200);
      got.push(res.headers['x-origin'] as string);
    }
    expect(got).toEqual(['a', 'b', 'a', 'b']);
    for (const s of [...a.seen, ...b.seen]) expect(s).toMatchObject({ sni: 'one.one.one.one', host: 'one.one.one.one' });
  });
});
