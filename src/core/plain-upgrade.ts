/**
 * An HTTP/1.1 Upgrade to anything but WebSocket (`Upgrade: h2c` with HTTP2-Settings, as
 * `curl --http2` sends over cleartext; TLS/1.0; any unknown token) is served as a plain request,
 * as nginx does: the client asked to switch if the server agrees, and the proxy does not. Runs on
 * the listener's `upgrade` event when `isWebSocketUpgrade()` (websocket.ts) says no.
 *
 * node's HTTP/1.1 server hands every `Connection: upgrade` request to the `upgrade` event with its
 * parser detached, and the request's body, if any, unparsed. So the request head is written out
 * again without the `upgrade` token in Connection (Upgrade and HTTP2-Settings stay: they are
 * hop-by-hop, dropped on the way upstream like any other), put back in front of the bytes that
 * followed it, and the socket is given back to the same HTTP/1.1 server as a new connection. The
 * request then goes through the normal exchange: its body proxied, its phases run, keep-alive kept.
 *
 * @example
 *   server.on('upgrade', (req, socket, head) => {
 *     if (!isWebSocketUpgrade(req)) return serveAsPlainRequest(server, req, socket, head);
 *   });
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';

/** Hands `socket` back to `server` with the request re-read as one that asks for no upgrade. */
export function serveAsPlainRequest(server: Server, req: IncomingMessage, socket: Socket, head: Buffer): void {
  socket.unshift(head.length ? Buffer.concat([plainRequestHead(req), head]) : plainRequestHead(req));
  // A new parser for the same connection (metrics count a connection once: see trackConnection).
  server.emit('connection', socket);
  socket.resume();
}

/**
 * The request head of `req` as it came (request line, header names and values in order, repeats
 * included), with `upgrade` removed from its Connection header(s): node's parser then reads it as
 * a plain request. A Connection header left with no token is dropped.
 */
export function plainRequestHead(req: IncomingMessage): Buffer {
  let head = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    let value = raw[i + 1]!;
    if (name.length === 10 && name.toLowerCase() === 'connection') {
      value = value
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t !== '' && t.toLowerCase() !== 'upgrade')
        .join(', ');
      if (value === '') continue;
    }
    head += `${name}: ${value}\r\n`;
  }
  // Header values are latin1 as the parser read them.
  return Buffer.from(`${head}\r\n`, 'latin1');
}
