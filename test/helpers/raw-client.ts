/**
 * A raw TCP client for tests that need exact bytes on the wire (smuggling, pipelining, framing).
 * Collects everything the server sends as latin1 text; `until(pred)` resolves with it once `pred`
 * holds or the server closed (rejects after `ms`, 3 s by default, with what arrived). The socket is
 * destroyed when the test finishes.
 */
import net from 'node:net';
import { onTestFinished } from 'vitest';

export interface RawClient {
  socket: net.Socket;
  until(pred: (text: string) => boolean, ms?: number): Promise<string>;
  text(): string;
  closed(): boolean;
}

export function rawClient(port: number): RawClient {
  const socket = net.connect(port, '127.0.0.1');
  let buf = '';
  let closed = false;
  const waiters: Array<() => void> = [];
  const wake = () => {
    for (const w of waiters.splice(0)) w();
  };
  socket.on('data', (c: Buffer) => {
    buf += c.toString('latin1');
    wake();
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    closed = true;
    wake();
  });
  onTestFinished(() => void socket.destroy());
  const until = (pred: (text: string) => boolean, ms = 3000) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out; got ${JSON.stringify(buf)}`)), ms);
      const check = () => {
        if (pred(buf) || closed) {
          clearTimeout(timer);
          resolve(buf);
        } else waiters.push(check);
      };
      check();
    });
  return { socket, until, text: () => buf, closed: () => closed };
}
