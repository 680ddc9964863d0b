/**
 * `limits.client_body_timeout` (nginx's): an HTTP/1 request body that makes no progress for that
 * long fails the request, so a client that stops mid-upload cannot hold an upstream connection
 * (or a pool slot other requests wait for) for ever. Started by the exchange for a request with a
 * body. It adds no 'data' listener (the body's flow is left to whoever reads it) and reads the
 * connection's `bytesRead` every half period; time while the proxy itself is not reading (the body
 * is paused by back-pressure or not yet taken by the upstream) does not count. Calls `onStall`
 * once; returns a function that stops watching (also stops by itself when the body is complete).
 */
import type { IncomingMessage } from 'node:http';

export function watchBodyProgress(req: IncomingMessage, ms: number, onStall: () => void): () => void {
  const socket = req.socket;
  let seen = socket.bytesRead;
  let since = performance.now();
  const timer = setInterval(() => {
    if (req.complete || req.destroyed) return clearInterval(timer);
    const now = performance.now();
    const read = socket.bytesRead;
    if (read !== seen || req.readableFlowing !== true) {
      seen = read;
      since = now;
      return;
    }
    if (now - since >= ms) {
      clearInterval(timer);
      onStall();
    }
  }, Math.max(Math.floor(ms / 2), 10));
  timer.unref();
  return () => clearInterval(timer);
}
