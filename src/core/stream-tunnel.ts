/**
 * A raw byte tunnel between two connected sockets, used once a WebSocket upgrade succeeded
 * (websocket.ts) and for every TCP stream connection (stream-listener.ts). The client side may
 * also be an HTTP/2 stream (a WebSocket over HTTP/2, h2-websocket.ts): anything duplex with
 * `setTimeout`. Runs until both sides have closed, then calls `onClose` once with the byte counts.
 *
 * - Back-pressure both ways: `pipe()` pauses the reading side while the writing side's buffer is full.
 * - Half-close: a FIN (or END_STREAM) from one side ends the other side's writable half (pipe's
 *   `end`); the tunnel lives on in the other direction until that side ends too (sockets made with
 *   `allowHalfOpen`).
 * - Idle timeout: no byte either way on the client socket for `idleMs` closes both (0 = none).
 * - An error or reset on either side destroys both.
 *
 * @example
 *   startTunnel(client, upstream, { idleMs: 60_000, onClose: (s) => log(s.bytesToClient, s.bytesFromClient) });
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ErrorCode } from '../errors.ts';

/** The client end of a tunnel: a socket, or an HTTP/2 stream (whose `destroy()` resets it). */
export type TunnelSide = Duplex & { setTimeout(ms: number): unknown };

export interface TunnelStats {
  /** Bytes written to the client (upstream → client), not counting what the caller wrote before. */
  bytesToClient: number;
  /** Bytes read from the client (client → upstream). */
  bytesFromClient: number;
  /** Why the tunnel ended early: PRX_ERR_IDLE_TIMEOUT, PRX_ERR_UPSTREAM_PROTOCOL (upstream error), PRX_ERR_CLIENT_ABORTED; '' for a clean close. */
  error: ErrorCode | '';
}

export interface TunnelOptions {
  /** Close both sides after this many ms without data either way; 0 = never. */
  idleMs: number;
  /** How a cut (an error, the idle timeout, a hard stop) ends the client side. Default: `destroy()` (an HTTP/2 stream passes RST_STREAM CANCEL). */
  cutClient?(): void;
  onClose(stats: TunnelStats): void;
}

/** A running tunnel: `destroy()` cuts both sides now (hard stop). */
export interface Tunnel {
  readonly stats: TunnelStats;
  destroy(): void;
}

/** Pipes `client` ⇄ `upstream` until both close; see the module comment. */
export function startTunnel(client: TunnelSide, upstream: Socket, opts: TunnelOptions): Tunnel {
  const stats: TunnelStats = { bytesToClient: 0, bytesFromClient: 0, error: '' };
  let open = 2;
  let done = false;
  const closed = (): void => {
    if (--open > 0 || done) return;
    done = true;
    opts.onClose(stats);
  };
  const destroy = (): void => {
    if (opts.cutClient) opts.cutClient();
    else client.destroy();
    upstream.destroy();
  };
  client.on('data', (c: Buffer) => (stats.bytesFromClient += c.length));
  upstream.on('data', (c: Buffer) => (stats.bytesToClient += c.length));
  client.on('error', () => {
    stats.error ||= 'PRX_ERR_CLIENT_ABORTED';
    destroy();
  });
  upstream.on('error', () => {
    stats.error ||= 'PRX_ERR_UPSTREAM_PROTOCOL';
    destroy();
  });
  // One side gone for good: the other gets what is still buffered for it, then closes.
  client.once('close', () => {
    upstream.destroySoon();
    closed();
  });
  upstream.once('close', () => {
    destroySoon(client);
    closed();
  });
  if (opts.idleMs > 0) {
    client.setTimeout(opts.idleMs);
    client.on('timeout', () => {
      stats.error ||= 'PRX_ERR_IDLE_TIMEOUT';
      destroy();
    });
  }
  client.pipe(upstream);
  upstream.pipe(client);
  return { stats, destroy };
}

/** net.Socket's destroySoon() for any duplex: ends the writable side, destroys once it is flushed. */
function destroySoon(side: Duplex): void {
  if (side.writable) side.end();
  if (side.writableFinished) side.destroy();
  else side.once('finish', () => side.destroy());
}
