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

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export function sniffH2cPreface(socket: Socket, timeoutMs: number, dispatch: (socket: Socket, http2: boolean) => void): void {
  let seen: Buffer | undefined;
  const onTimeout = () => socket.destroy();
  const onError = () => socket.destroy();
  function onData(chunk: Buffer): void {
    const buf: Buffer = seen ? Buffer.concat([seen, chunk]) : chunk;
    const n = Math.min(buf.length, PREFACE.length);
    const prefix = buf.compare(PREFACE, 0, n, 0, n) === 0;
    if (prefix && buf.length < PREFACE.length) {
      seen = buf; // so far a prefix of the preface: wait for the rest
      return;
    }
    socket.off('data', onData);
    socket.off('error', onError);
    socket.off('timeout', onTimeout);
    socket.setTimeout(0);
    socket.pause();
    socket.unshift(buf);
    dispatch(socket, prefix);
  }
  socket.setNoDelay(true);
  socket.setTimeout(timeoutMs);
  socket.on('timeout', onTimeout);
  socket.on('error', onError);
  socket.on('data', onData);
}
