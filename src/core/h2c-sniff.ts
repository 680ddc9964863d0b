/**
 * One plain port for HTTP/1.1 and h2c (HTTP/2 by prior knowledge, RFC 9113 §3.3): runs on each
 * new connection of a plain listener with `http2: true`, reads until the first bytes either are
 * the HTTP/2 connection preface or cannot be, puts them back, and hands the socket to the HTTP/2
 * or the HTTP/1.1 server, paused (HTTP/1.1 needs a resume() after taking it; HTTP/2 reads the
 * put-back bytes itself). A client that sends nothing is dropped after `timeoutMs`.
 *
 * @example
 *   net.createServer((s) => sniffH2cPreface(s, 10_000, (s, h2) => (h2 ? h2server : h1server).emit('connection', s)));
 */
import type { Socket } from 'node:net';
import { readFirstBytes } from './first-bytes.ts';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export function sniffH2cPreface(socket: Socket, timeoutMs: number, dispatch: (socket: Socket, http2: boolean) => void): void {
  socket.setNoDelay(true);
  // Decided once the bytes stop being a prefix of the preface, or are all of it.
  const isPrefix = (buf: Buffer) => {
    const n = Math.min(buf.length, PREFACE.length);
    return buf.compare(PREFACE, 0, n, 0, n) === 0;
  };
  readFirstBytes(socket, timeoutMs, (buf) => !isPrefix(buf) || buf.length >= PREFACE.length, (s, buf) => dispatch(s, isPrefix(buf)));
}
