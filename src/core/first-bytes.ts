/**
 * Reads the first bytes of a new connection until `enough(bytes)` says they decide what it is, then
 * puts them back and hands the socket on, paused (the protocol that takes it reads them again). A
 * client that sends nothing decisive within `timeoutMs` is dropped. Used to tell h2c from HTTP/1.1
 * (h2c-sniff.ts) and to read a TLS ClientHello before the TLS layer (tls-client-hello.ts).
 */
import type { Socket } from 'node:net';

export function readFirstBytes(socket: Socket, timeoutMs: number, enough: (bytes: Buffer) => boolean, then: (socket: Socket, bytes: Buffer) => void): void {
  let seen: Buffer | undefined;
  const onTimeout = () => socket.destroy();
  const onError = () => socket.destroy();
  function onData(chunk: Buffer): void {
    const buf: Buffer = seen ? Buffer.concat([seen, chunk]) : chunk;
    if (!enough(buf)) {
      seen = buf;
      return;
    }
    socket.off('data', onData);
    socket.off('error', onError);
    socket.off('timeout', onTimeout);
    socket.setTimeout(0);
    socket.pause();
    socket.unshift(buf);
    then(socket, buf);
  }
  socket.setTimeout(timeoutMs);
  socket.on('timeout', onTimeout);
  socket.on('error', onError);
  socket.on('data', onData);
}
