/**
 * WebSocket test helpers on real sockets: a `ws` echo origin on 127.0.0.1:0, and a WebSocket client
 * over HTTP/2 (RFC 8441 extended CONNECT on a node:http2 session, with `ws` framing the stream).
 * Everything opened here is closed by `onTestFinished`.
 */
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { expect, onTestFinished } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';

export interface WsOrigin {
  address: string;
  server: WebSocketServer;
  /** Upgrade requests the origin accepted, in order. */
  upgrades: IncomingMessage[];
}

/** A ws echo server on 127.0.0.1:0 that prefixes text messages with `name:`; speaks subprotocol `chat` when offered. */
export async function startWsOrigin(name = 'o'): Promise<WsOrigin> {
  const upgrades: IncomingMessage[] = [];
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 16 << 20, handleProtocols: (p) => (p.has('chat') ? 'chat' : false) });
  server.on('connection', (ws, req) => {
    upgrades.push(req);
    ws.on('message', (data, isBinary) => ws.send(isBinary ? data : `${name}:${data.toString()}`, { binary: isBinary }));
  });
  await once(server, 'listening');
  onTestFinished(
    () =>
      new Promise<void>((r) => {
        for (const c of server.clients) c.terminate();
        server.close(() => r());
      }),
  );
  return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, server, upgrades };
}

/** Sends one message and resolves with the next message received. */
export async function roundTrip(ws: WebSocket, data: string | Buffer): Promise<{ data: Buffer; isBinary: boolean }> {
  const reply = once(ws, 'message') as Promise<[Buffer, boolean]>;
  ws.send(data, { binary: typeof data !== 'string' });
  const [d, isBinary] = await reply;
  return { data: d, isBinary };
}

/** Sends a 5 MB binary message (a byte pattern every 4 KiB) and expects it echoed back unchanged, as binary. */
export async function expectBigBinaryEcho(ws: WebSocket): Promise<void> {
  const big = Buffer.alloc(5 * 1024 * 1024);
  for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;
  const echoed = await roundTrip(ws, big);
  expect(echoed.isBinary).toBe(true);
  expect(echoed.data.equals(big)).toBe(true);
}

export interface H2WebSocketResult {
  status: number;
  headers: IncomingHttpHeaders;
  stream: ClientHttp2Stream;
  /** On a 2xx: a `ws` client speaking on the stream. */
  ws?: WebSocket;
  /** Otherwise: the response body. */
  body: string;
}

/**
 * Opens a WebSocket over HTTP/2 on `session` (RFC 8441): waits until the server has announced
 * SETTINGS_ENABLE_CONNECT_PROTOCOL, sends `:method CONNECT` + `:protocol websocket` for `path`,
 * and on a 2xx hands the stream to a `ws` client (client-side framing: masked frames out).
 */
export async function h2WebSocket(session: ClientHttp2Session, path: string, opts: { authority?: string; protocols?: string[]; headers?: OutgoingHttpHeaders } = {}): Promise<H2WebSocketResult> {
  if (!session.remoteSettings.enableConnectProtocol) await once(session, 'remoteSettings');
  if (!session.remoteSettings.enableConnectProtocol) throw new Error('the server does not offer extended CONNECT');
  const stream = session.request(
    {
      ':method': 'CONNECT',
      ':protocol': 'websocket',
      ':path': path,
      ...(opts.authority ? { ':authority': opts.authority } : {}),
      'sec-websocket-version': '13',
      ...(opts.protocols ? { 'sec-websocket-protocol': opts.protocols.join(', ') } : {}),
      ...opts.headers,
    },
    { endStream: false },
  );
  onTestFinished(() => {
    stream.destroy();
  });
  stream.on('error', () => undefined);
  const [headers] = (await once(stream, 'response')) as [IncomingHttpHeaders];
  const status = Number(headers[':status']);
  if (status >= 200 && status < 300) {
    // `ws` runs on any duplex; a WebSocket made without an address is a server one, so it is told
    // it is the client (masks what it sends, expects unmasked frames), as its own client code does.
    const ws = new (WebSocket as unknown as new (address: null, protocols: undefined, opts: { closeTimeout: number }) => WebSocket)(null, undefined, { closeTimeout: 30_000 });
    (ws as unknown as { _isServer: boolean })._isServer = false;
    (ws as unknown as { setSocket(s: unknown, head: Buffer, o: { maxPayload: number }): void }).setSocket(stream, Buffer.alloc(0), { maxPayload: 16 << 20 });
    onTestFinished(() => ws.terminate());
    return { status, headers, stream, ws, body: '' };
  }
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  await once(stream, 'end');
  return { status, headers, stream, body: Buffer.concat(chunks).toString() };
}
