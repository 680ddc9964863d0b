/**
 * gRPC end to end through an h2c listener and a `protocol: http2` upstream, with @grpc/grpc-js on
 * both sides: the four call kinds with metadata and custom trailers, a server error's status and
 * trailers kept, failures turned into gRPC statuses (UNAVAILABLE for a dead or killed upstream,
 * UNIMPLEMENTED for no route, DEADLINE_EXCEEDED for grpc-timeout, also enforced by the proxy).
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import http2 from 'node:http2';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { h2Connect, h2Request } from '../helpers/h2-client.ts';
import { startProxy } from '../helpers/servers.ts';

const PROTO = `syntax = "proto3";
package test;
service Echo {
  rpc Unary (Msg) returns (Msg);
  rpc ServerStream (Msg) returns (stream Msg);
  rpc ClientStream (stream Msg) returns (Msg);
  rpc Bidi (stream Msg) returns (stream Msg);
}
message Msg { string text = 1; int32 n = 2; }
`;

interface Msg {
  text: string;
  n: number;
}
type EchoClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

const dir = mkdtempSync(path.join(os.tmpdir(), 'sg-grpc-'));
writeFileSync(path.join(dir, 'echo.proto'), PROTO);
const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(path.join(dir, 'echo.proto'), { keepCase: true, defaults: true })) as unknown as {
  test: { Echo: grpc.ServiceClientConstructor };
};

function trailer(kv: Record<string, string>): grpc.Metadata {
  const m = new grpc.Metadata();
  for (const [k, v] of Object.entries(kv)) m.set(k, v);
  return m;
}

/** A grpc-js server; `server.forceShutdown()` kills it mid-call. */
async function startGrpcServer() {
  const server = new grpc.Server();
  server.addService(pkg.test.Echo.service, {
    Unary(call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
      const who = String(call.metadata.get('x-client')[0] ?? '');
      call.sendMetadata(trailer({ 'x-header-meta': 'h' }));
      if (call.request.text === 'fail') return cb({ code: grpc.status.NOT_FOUND, details: 'no such thing', metadata: trailer({ 'x-why': 'missing' }) });
      const answer = () => cb(null, { text: `unary:${call.request.text}:${who}`, n: 1 }, trailer({ 'x-trailer': 'custom' }));
      if (call.request.text === 'slow') setTimeout(answer, 3000).unref();
      else answer();
    },
    ServerStream(call: grpc.ServerWritableStream<Msg, Msg>) {
      for (let i = 0; i < call.request.n; i++) call.write({ text: `item-${i}`, n: i });
      if (call.request.text === 'die') {
        setTimeout(() => server.forceShutdown(), 50);
        return;
      }
      call.end(trailer({ 'x-count': String(call.request.n) }));
    },
    ClientStream(call: grpc.ServerReadableStream<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
      const texts: string[] = [];
      call.on('data', (m: Msg) => texts.push(m.text));
      call.on('end', () => cb(null, { text: texts.join(','), n: texts.length }, trailer({ 'x-trailer': 'client-stream' })));
    },
    Bidi(call: grpc.ServerDuplexStream<Msg, Msg>) {
      call.on('data', (m: Msg) => call.write({ text: `echo:${m.text}`, n: m.n }));
      call.on('end', () => call.end(trailer({ 'x-trailer': 'bidi' })));
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  onTestFinished(() => server.forceShutdown());
  return { server, address: `127.0.0.1:${port}` };
}

async function proxyTo(upstream: string, extra = ''): Promise<number> {
  const { port } = await startProxy(`listen:
  - address: 127.0.0.1:0
    http2: true
log: { level: silent }
upstreams:
  grpc:
    targets: ["${upstream}"]
    protocol: http2
    retries: 0
routes:
  - match: { path_prefix: /test.Echo/ }
    upstream: grpc
${extra}`);
  return port;
}

function client(port: number): EchoClient {
  const c = new pkg.test.Echo(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as EchoClient;
  onTestFinished(() => c.close());
  return c;
}

function unary(c: EchoClient, msg: Partial<Msg>, meta = new grpc.Metadata(), options: grpc.CallOptions = {}) {
  return new Promise<{ err: grpc.ServiceError | null; res?: Msg; headers?: grpc.Metadata; trailers?: grpc.Metadata }>((resolve) => {
    let headers: grpc.Metadata | undefined;
    let trailers: grpc.Metadata | undefined;
    const call = c.Unary!(msg, meta, options, (err: grpc.ServiceError | null, res?: Msg) => {
      // The status event follows the callback; wait for it so trailers are in.
      setImmediate(() => resolve({ err, res, headers, trailers }));
    }) as grpc.ClientUnaryCall;
    call.on('metadata', (m: grpc.Metadata) => (headers = m));
    call.on('status', (s: grpc.StatusObject) => (trailers = s.metadata));
  });
}

function collect(stream: grpc.ClientReadableStream<Msg> | grpc.ClientDuplexStream<Msg, Msg>) {
  return new Promise<{ items: Msg[]; status?: grpc.StatusObject; err?: grpc.ServiceError }>((resolve) => {
    const items: Msg[] = [];
    let err: grpc.ServiceError | undefined;
    stream.on('data', (m: Msg) => items.push(m));
    stream.on('error', (e: grpc.ServiceError) => (err = e));
    stream.on('status', (status: grpc.StatusObject) => resolve({ items, status, err }));
  });
}

describe('gRPC through the proxy', () => {
  it('unary: request metadata reaches the server; response, header metadata and custom trailers come back', async () => {
    const up = await startGrpcServer();
    const c = client(await proxyTo(up.address));
    const r = await unary(c, { text: 'hi' }, trailer({ 'x-client': 'tester' }));
    expect(r.err).toBeNull();
    expect(r.res).toEqual({ text: 'unary:hi:tester', n: 1 });
    expect(r.headers!.get('x-header-meta')).toEqual(['h']);
    expect(r.trailers!.get('x-trailer')).toEqual(['custom']);
  });

  it("unary: a server's error status, message and trailers reach the client unchanged", async () => {
    const up = await startGrpcServer();
    const c = client(await proxyTo(up.address));
    const r = await unary(c, { text: 'fail' });
    expect(r.err!.code).toBe(grpc.status.NOT_FOUND);
    expect(r.err!.details).toBe('no such thing');
    expect(r.err!.metadata.get('x-why')).toEqual(['missing']);
  });

  it('server streaming, client streaming and bidi streams, with trailers', async () => {
    const up = await startGrpcServer();
    const c = client(await proxyTo(up.address));
    const ss = await collect(c.ServerStream!({ text: 'go', n: 5 }) as grpc.ClientReadableStream<Msg>);
    expect(ss.items.map((m) => m.text)).toEqual(['item-0', 'item-1', 'item-2', 'item-3', 'item-4']);
    expect(ss.status!.code).toBe(grpc.status.OK);
    expect(ss.status!.metadata.get('x-count')).toEqual(['5']);

    const cs = await new Promise<{ res?: Msg; trailers?: grpc.Metadata }>((resolve, reject) => {
      let res: Msg | undefined;
      const call = c.ClientStream!((err: grpc.ServiceError | null, r?: Msg) => (err ? reject(err) : (res = r))) as grpc.ClientWritableStream<Msg>;
      call.on('status', (s: grpc.StatusObject) => resolve({ res, trailers: s.metadata }));
      for (const t of ['a', 'b', 'c']) call.write({ text: t, n: 0 });
      call.end();
    });
    expect(cs.res).toEqual({ text: 'a,b,c', n: 3 });
    expect(cs.trailers!.get('x-trailer')).toEqual(['client-stream']);

    // Bidi: each answer arrives before the next message is sent (a true full-duplex stream).
    const bidi = c.Bidi!() as grpc.ClientDuplexStream<Msg, Msg>;
    const done = collect(bidi);
    const answers: string[] = [];
    for (let i = 0; i < 3; i++) {
      const next = new Promise<Msg>((r) => bidi.once('data', r));
      bidi.write({ text: `m${i}`, n: i });
      answers.push((await next).text);
    }
    bidi.end();
    const result = await done;
    expect(answers).toEqual(['echo:m0', 'echo:m1', 'echo:m2']);
    expect(result.status!.code).toBe(grpc.status.OK);
    expect(result.status!.metadata.get('x-trailer')).toEqual(['bidi']);
  });

  it('an upstream killed mid-stream ends the call with UNAVAILABLE after the messages already sent', async () => {
    const up = await startGrpcServer();
    const c = client(await proxyTo(up.address));
    const r = await collect(c.ServerStream!({ text: 'die', n: 2 }) as grpc.ClientReadableStream<Msg>);
    expect(r.items.map((m) => m.text)).toEqual(['item-0', 'item-1']);
    expect(r.status!.code).toBe(grpc.status.UNAVAILABLE);
  });

  it('a dead upstream is UNAVAILABLE and an unrouted method UNIMPLEMENTED, as trailers-only gRPC answers', async () => {
    const port = await proxyTo('127.0.0.1:1');
    const c = client(port);
    const r = await unary(c, { text: 'x' });
    expect([r.err!.code, r.err!.details]).toEqual([grpc.status.UNAVAILABLE, 'connecting to the upstream target failed']);
    // On the wire: HTTP 200, content-type application/grpc, grpc-status in the one HEADERS frame.
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const raw = await h2Request(session, { ':method': 'POST', ':path': '/other.Svc/M', ':authority': 'x', 'content-type': 'application/grpc', te: 'trailers' }, Buffer.alloc(5));
    expect(raw.status).toBe(200);
    expect(raw.headers['content-type']).toBe('application/grpc');
    expect(raw.headers['grpc-status']).toBe(String(grpc.status.UNIMPLEMENTED));
    expect(raw.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(raw.body.length).toBe(0);
  });

  it("a deadline shorter than the server's delay is DEADLINE_EXCEEDED", async () => {
    const up = await startGrpcServer();
    const c = client(await proxyTo(up.address));
    const r = await unary(c, { text: 'slow' }, new grpc.Metadata(), { deadline: Date.now() + 300 });
    expect(r.err!.code).toBe(grpc.status.DEADLINE_EXCEEDED);
  });

  it('a deadline longer than a timer holds (30 days, and the largest grpc-timeout) is no deadline at the proxy, not an instant DEADLINE_EXCEEDED', async () => {
    const up = await startGrpcServer();
    const c = client(await proxyTo(up.address));
    const r = await unary(c, { text: 'far' }, new grpc.Metadata(), { deadline: Date.now() + 30 * 24 * 3600 * 1000 });
    expect(r.err ?? null).toBeNull();
    const port = await proxyTo(up.address);
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const raw = await h2Request(session, { ':method': 'POST', ':path': '/test.Echo/Unary', ':authority': 'x', 'content-type': 'application/grpc', 'grpc-timeout': '99999999H', te: 'trailers' }, Buffer.alloc(5));
    expect(raw.headers['grpc-status'] ?? raw.trailers['grpc-status']).not.toBe(String(grpc.status.DEADLINE_EXCEEDED));
  });

  it('the proxy itself enforces grpc-timeout when the upstream never answers', async () => {
    // An origin that takes the stream and never responds.
    const silent = http2.createServer();
    silent.on('stream', () => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const sessions = new Set<http2.Http2Session>();
    silent.on('session', (s) => sessions.add(s));
    onTestFinished(() => {
      for (const s of sessions) s.destroy();
      silent.close();
    });
    const port = await proxyTo(`127.0.0.1:${(silent.address() as AddressInfo).port}`);
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const t0 = Date.now();
    const raw = await h2Request(session, { ':method': 'POST', ':path': '/test.Echo/Unary', ':authority': 'x', 'content-type': 'application/grpc', 'grpc-timeout': '200m', te: 'trailers' }, Buffer.alloc(5));
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(raw.status).toBe(200);
    expect(raw.headers['grpc-status'] ?? raw.trailers['grpc-status']).toBe(String(grpc.status.DEADLINE_EXCEEDED));
  });

  it('a non-gRPC answer to a call whose client is still sending resets the upstream stream with CANCEL (it leaked before)', async () => {
    // An origin that answers any stream with a never-ending text/plain body.
    const origin = http2.createServer();
    const closed: number[] = [];
    origin.on('stream', (stream) => {
      stream.on('error', () => undefined);
      stream.on('close', () => closed.push(stream.rstCode));
      stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      const tick = setInterval(() => (stream.closed ? clearInterval(tick) : stream.write('tick\n')), 50);
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const sessions = new Set<http2.Http2Session>();
    origin.on('session', (s) => sessions.add(s));
    onTestFinished(() => {
      for (const s of sessions) s.destroy();
      origin.close();
    });
    const port = await proxyTo(`127.0.0.1:${(origin.address() as AddressInfo).port}`);
    const session = await h2Connect(`http://127.0.0.1:${port}`);
    const upstreamClosed = new Promise<number>((resolve) => origin.once('stream', (s) => s.once('close', () => resolve(s.rstCode))));
    // The client sends one message and keeps its side open.
    const call = session.request({ ':method': 'POST', ':path': '/test.Echo/ClientStream', 'content-type': 'application/grpc', te: 'trailers' }, { endStream: false });
    call.on('error', () => undefined);
    call.write(Buffer.from([0, 0, 0, 0, 0]));
    const head = await new Promise<http2.IncomingHttpHeaders>((resolve) => call.once('response', resolve));
    expect(head['grpc-status']).toBe(String(grpc.status.UNKNOWN));
    expect(String(head['grpc-message'])).toMatch(/without a gRPC status/);
    // The origin's stream is reset while the client's call is still open.
    expect(await upstreamClosed).toBe(http2.constants.NGHTTP2_CANCEL);
    expect(closed).toEqual([http2.constants.NGHTTP2_CANCEL]);
    call.close(http2.constants.NGHTTP2_CANCEL);
  });
});
