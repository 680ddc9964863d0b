/**
 * TCP stream proxy (`streams:`) with real sockets: echo with half-close and 5 MB both ways, an
 * access script that refuses a client address (and the same stream allowing it after a reload),
 * failover from a dead target, TLS termination with SNI visible to the script, TLS origination,
 * the idle timeout, and the log line / log phase per connection.
 */
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.ts';
import { createReloader } from '../../src/control/reload.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { makePki, type Pki } from '../helpers/certs.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { closeServer, startProxy } from '../helpers/servers.ts';

const TS = 'import type * as api from "scriptgate/runtime-api";\n';

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});

interface Echo {
  address: string;
  /** Connections the echo server accepted. */
  accepted: () => number;
}

/** A TCP (or TLS) echo server on 127.0.0.1:0 that passes a half-close on (ends after the client ended). */
async function startEcho(tlsFiles?: { cert: string; key: string }): Promise<Echo> {
  let accepted = 0;
  const onSocket = (s: net.Socket): void => {
    accepted++;
    s.on('error', () => undefined);
    s.pipe(s);
  };
  const server = tlsFiles
    ? tls.createServer({ cert: readFileSync(tlsFiles.cert), key: readFileSync(tlsFiles.key), allowHalfOpen: true } as tls.TlsOptions, onSocket)
    : net.createServer({ allowHalfOpen: true }, onSocket);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onTestFinished(() => closeServer(server));
  return { address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, accepted: () => accepted };
}

/** Connects, writes `data`, half-closes, and collects everything until the connection closes. */
function exchange(socket: net.Socket, data: Buffer | string): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(Buffer.concat(chunks)));
    socket.end(data);
  });
}

function tcp(port: number): net.Socket {
  const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  onTestFinished(() => void s.destroy());
  return s;
}

function streamConfig(targets: string[], stream: string, upstreamExtra = ''): string {
  return `listen:\n  - address: 127.0.0.1:0\nupstreams:\n  echo:\n    targets: [${targets.map((t) => `"${t}"`).join(', ')}]\n${upstreamExtra}routes:\n  - upstream: echo\nstreams:\n  - name: echo\n    address: 127.0.0.1:0\n    upstream: echo\n${stream}`;
}

/** Says 'hi' over TLS (SNI a.stream.test, optionally with a client certificate); the echo, or nothing when refused. */
function tlsHi(port: number, client?: { cert: string; key: string }): Promise<Buffer> {
  return new Promise((resolve) => {
    const opts = { host: '127.0.0.1', port, servername: 'a.stream.test', ca: readFileSync(pki.ca.cert), allowHalfOpen: true, ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}) };
    const s = tls.connect(opts as tls.ConnectionOptions, () => void exchange(s, 'hi').then(resolve));
    s.once('error', () => resolve(Buffer.alloc(0)));
    onTestFinished(() => void s.destroy());
  });
}

describe('TCP stream proxy', () => {
  it('config: an unknown upstream or tenant, a duplicate name and an unknown key are file:line problems', () => {
    const yaml = `listen:\n  - address: 127.0.0.1:0\nupstreams:\n  up: { targets: ["127.0.0.1:1"] }\nroutes:\n  - upstream: up\nstreams:\n  - name: s\n    address: 127.0.0.1:0\n    upstream: nope\n  - name: s\n    address: 127.0.0.1:0\n    upstream: up\n    tenant: ghost\n    bogus: 1\n`;
    let problems: string[] = [];
    try {
      parseConfig(yaml, 'streams.yaml');
    } catch (err) {
      problems = (err as ConfigError).problems;
    }
    expect(problems).toEqual([
      'streams.yaml:10: streams[0].upstream: unknown upstream "nope"',
      'streams.yaml:11: streams[1].name: duplicate stream name "s"',
      'streams.yaml:14: streams[1].tenant: unknown tenant "ghost"',
      'streams.yaml:15: streams[1]: Unrecognized key: "bogus"',
    ]);
  });

  it('echoes through the stream proxy with half-close and 5 MB each way; one log line per connection', async () => {
    const echo = await startEcho();
    const logs = captureLogs();
    const { server } = await startProxy(streamConfig([echo.address], ''), {}, logs.logger);
    const port = server.streamPorts[0]!;
    expect(await exchange(tcp(port), 'hello')).toEqual(Buffer.from('hello'));
    const big = Buffer.alloc(5 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 1000) big[i] = (i / 1000) & 0xff;
    const back = await exchange(tcp(port), big);
    expect(back.length).toBe(big.length);
    expect(back.equals(big)).toBe(true);
    const line = await logs.waitFor((l) => l.msg === 'stream' && l.bytes === big.length);
    expect(line).toMatchObject({ stream: 'echo', status: 200, bytes_in: big.length, upstream: echo.address });
    expect(line.ms as number).toBeGreaterThan(0);
    expect(line.error).toBeUndefined();
  });

  it('an access script refuses 127.0.0.1 (closed, the upstream never sees it); after a reload that allows it, it is forwarded', async () => {
    const echo = await startEcho();
    const logs = captureLogs();
    const deny = `    access_by_script: gate.ts\n    log_by_script: log.ts\n`;
    const { server, file } = await startProxy(
      streamConfig([echo.address], deny),
      {
        'gate.ts': `${TS}export default function (ctx: api.StreamAccessContext) {
          ctx.vars.client = ctx.connection.clientIp;
          if (ctx.connection.clientIp === '127.0.0.1') return ctx.exit(403);
        }`,
        'log.ts': `${TS}export default function (ctx: api.StreamLogContext) {
          ctx.log.info('stream logged', { status: ctx.response.status, error: ctx.error, client: ctx.vars.client, sent: ctx.bytesSent,
            received: ctx.bytesReceived, upstream: ctx.upstreamAddress, total: ctx.timings.total, route: ctx.route });
        }`,
      },
      logs.logger,
    );
    const port = server.streamPorts[0]!;
    expect((await exchange(tcp(port), 'let me in')).length).toBe(0);
    expect(echo.accepted()).toBe(0);
    const refused = await logs.waitFor((l) => l.msg === 'stream logged');
    expect(refused).toMatchObject({ status: 403, error: 'PRX_ERR_STREAM_REFUSED', client: '127.0.0.1', upstream: '', route: 'echo' });

    writeFileSync(file.replace(/scriptgate\.yaml$/, 'gate.ts'), `${TS}export default function (ctx: api.StreamAccessContext) { ctx.vars.client = ctx.connection.clientIp; if (ctx.connection.clientIp === '10.9.9.9') ctx.exit(403); }`);
    expect((await createReloader(server, file, createLogger('silent'))()).ok).toBe(true);
    expect((await exchange(tcp(port), 'let me in')).toString()).toBe('let me in');
    expect(echo.accepted()).toBe(1);
    const allowed = await logs.waitFor((l) => l.msg === 'stream logged' && l.status === 200);
    expect(allowed).toMatchObject({ error: '', sent: 9, received: 9, upstream: echo.address });
  });

  it('fails over from a dead target on connect failure; with only dead targets the client is closed (502 in the log)', async () => {
    const echo = await startEcho();
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const deadAddress = `127.0.0.1:${(dead.address() as net.AddressInfo).port}`;
    await closeServer(dead);
    const logs = captureLogs();
    const yaml = streamConfig([deadAddress, echo.address], '', '    retries: 1\n    passive: { max_fails: 0 }\n  gone:\n    targets: ["' + deadAddress + '"]\n') +
      '  - name: gone\n    address: 127.0.0.1:0\n    upstream: gone\n';
    const { server } = await startProxy(yaml, {}, logs.logger);
    for (let i = 0; i < 4; i++) expect((await exchange(tcp(server.streamPorts[0]!), `m${i}`)).toString()).toBe(`m${i}`);
    expect(echo.accepted()).toBe(4);
    expect((await exchange(tcp(server.streamPorts[1]!), 'x')).length).toBe(0);
    const failed = await logs.waitFor((l) => l.msg === 'stream' && l.stream === 'gone');
    expect(failed).toMatchObject({ status: 502, error: 'PRX_ERR_UPSTREAM_CONNECT' });
  });

  it('terminates TLS and shows the SNI to the access script, which refuses one name', async () => {
    const echo = await startEcho();
    const a = pki.leaf('stream-a', ['a.stream.test']);
    const b = pki.leaf('stream-b', ['b.stream.test']);
    const logs = captureLogs();
    const tlsKeys = `    tls:\n      certificates:\n        - { cert: ${a.cert}, key: ${a.key} }\n        - { cert: ${b.cert}, key: ${b.key} }\n    access_by_script: sni.ts\n`;
    const { server } = await startProxy(
      streamConfig([echo.address], tlsKeys),
      {
        'sni.ts': `${TS}export default function (ctx: api.StreamAccessContext) {
          ctx.log.info('sni seen', { sni: ctx.connection.serverName, tls: ctx.connection.tls });
          if (ctx.connection.serverName === 'b.stream.test') ctx.exit(403);
        }`,
      },
      logs.logger,
    );
    const port = server.streamPorts[0]!;
    const open = (servername: string): Promise<tls.TLSSocket> =>
      new Promise((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, servername, ca: readFileSync(pki.ca.cert), allowHalfOpen: true } as tls.ConnectionOptions, () => resolve(s));
        s.once('error', reject);
        onTestFinished(() => void s.destroy());
      });
    const sa = await open('a.stream.test');
    expect(sa.getPeerX509Certificate()!.subjectAltName).toBe('DNS:a.stream.test');
    expect((await exchange(sa, 'over tls')).toString()).toBe('over tls');
    expect(await logs.waitFor((l) => l.msg === 'sni seen' && l.sni === 'a.stream.test')).toMatchObject({ tls: true });
    const sb = await open('b.stream.test');
    expect((await exchange(sb, 'nope')).length).toBe(0);
    expect(await logs.waitFor((l) => l.msg === 'stream' && l.sni === 'b.stream.test')).toMatchObject({ status: 403, error: 'PRX_ERR_STREAM_REFUSED' });
    expect(echo.accepted()).toBe(1);
  });

  it('verify_client optional: no certificate or a trusted one gets through; an untrusted one is closed before the upstream', async () => {
    const echo = await startEcho();
    const a = pki.leaf('stream-opt', ['a.stream.test']);
    const trusted = pki.client('stream-client', 'client');
    const stranger = makePki(undefined, 'stream-stranger-ca').client('stranger', 'stranger');
    const { server } = await startProxy(streamConfig([echo.address], `    tls:\n      certificates:\n        - { cert: ${a.cert}, key: ${a.key} }\n      client_ca: ${pki.ca.cert}\n      verify_client: optional\n`));
    const port = server.streamPorts[0]!;
    const talk = (client?: { cert: string; key: string }) => tlsHi(port, client);
    expect((await talk()).toString()).toBe('hi');
    expect((await talk(trusted)).toString()).toBe('hi');
    expect((await talk(stranger)).length).toBe(0);
    expect(echo.accepted()).toBe(2);
  });

  it('an access script sees the verified client certificate (ctx.connection.clientCertificate) and can refuse by subject', async () => {
    const echo = await startEcho();
    const a = pki.leaf('stream-mtls', ['a.stream.test']);
    const billing = pki.client('stream-billing', 'billing');
    const other = pki.client('stream-other', 'other');
    const yaml = streamConfig([echo.address], `    tls:\n      certificates:\n        - { cert: ${a.cert}, key: ${a.key} }\n      client_ca: ${pki.ca.cert}\n      verify_client: optional\n    access_by_script: mtls.ts\n`);
    const { server } = await startProxy(yaml, {
      'mtls.ts': `export default function (ctx: any) { if (ctx.connection.clientCertificate?.subject !== 'CN=billing') return ctx.exit(403); }`,
    });
    const port = server.streamPorts[0]!;
    const talk = (client?: { cert: string; key: string }) => tlsHi(port, client);
    expect((await talk(billing)).toString()).toBe('hi');
    expect((await talk(other)).length).toBe(0);
    expect((await talk()).length).toBe(0);
    expect(echo.accepted()).toBe(1);
  });

  it('originates TLS to an upstream with tls (CA and SNI from the upstream config)', async () => {
    const origin = pki.leaf('stream-origin', ['origin.stream.test']);
    const echo = await startEcho(origin);
    const { server } = await startProxy(streamConfig([echo.address], '', `    tls: { ca: ${pki.ca.cert}, sni: origin.stream.test }\n`));
    expect((await exchange(tcp(server.streamPorts[0]!), 'to a TLS origin')).toString()).toBe('to a TLS origin');
  });

  it('closes a connection idle for idle_timeout, and keeps a busy one', async () => {
    const echo = await startEcho();
    const logs = captureLogs();
    const { server } = await startProxy(streamConfig([echo.address], '    idle_timeout: 400ms\n'), {}, logs.logger);
    const s = tcp(server.streamPorts[0]!);
    await once(s, 'connect');
    const t0 = Date.now();
    // Busy for longer than the timeout.
    while (Date.now() - t0 < 700) {
      const reply = once(s, 'data');
      s.write('tick');
      await reply;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(s.readableEnded).toBe(false);
    await once(s, 'end'); // the proxy closed its side
    expect(Date.now() - t0).toBeGreaterThanOrEqual(700 + 250);
    expect(await logs.waitFor((l) => l.msg === 'stream')).toMatchObject({ status: 200, error: 'PRX_ERR_IDLE_TIMEOUT' });
  });
});
