/**
 * Opens a raw connection to a target of an upstream, for the connections the proxy tunnels
 * instead of sending through undici: TCP streams (stream-listener.ts) and WebSocket upgrades
 * (websocket.ts). Runs once per tunnelled connection, before any byte of it is forwarded.
 *
 * The upstream's own config applies: its balancing picks the target (`Upstream.pick`, skipping
 * unhealthy and already-tried ones), `timeouts.connect` bounds each attempt, a failed attempt
 * (refused, unreachable, timeout, TLS handshake) counts against the target's health and is
 * retried on another target up to `retries` times within `retry_timeout`, and `tls` makes it a
 * TLS connection with the upstream's SNI, CA and client certificate. Calls back once: with the
 * connected socket and its target (whose `inFlight` the caller decrements when done), or with a
 * ProxyError (PRX_ERR_NO_TARGET when nothing is left to try).
 *
 * @example
 *   const attempt = connectUpstream(upstream, { hashKey }, (err, conn) => { … });
 *   client.once('close', () => attempt.cancel());
 */
import net, { type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { ProxyError } from '../errors.ts';
import type { Target, Upstream } from '../upstream/upstream.ts';
import { mapUpstreamError } from './upstream-errors.ts';

export interface UpstreamConnection {
  target: Target;
  socket: Socket;
  /** ms from the first attempt until this socket was connected (TLS: handshake done). */
  connectMs: number;
  /** Attempts that failed before this one. */
  retries: number;
}

export interface ConnectOptions {
  /** consistent_hash key of this connection. */
  hashKey?: string;
  /** Keep the socket writable after the upstream's FIN (TCP streams pass half-closes on). */
  allowHalfOpen?: boolean;
  /** ALPN protocols offered over TLS (a WebSocket upgrade needs `http/1.1`). */
  alpn?: string[];
}

export interface ConnectAttempt {
  /** Gives up: the socket being connected is destroyed and the callback never runs. */
  cancel(): void;
}

/** Connects to a target of `upstream` with failover; see the module comment. */
export function connectUpstream(upstream: Upstream, opts: ConnectOptions, done: (err: ProxyError | undefined, conn?: UpstreamConnection) => void): ConnectAttempt {
  const tried = new Set<Target>();
  const start = performance.now();
  let retries = 0;
  let lastError: ProxyError | undefined;
  let cancelled = false;
  /** Drops the attempt in progress (cancel). */
  let abandon: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;

  const attempt = (): void => {
    const target = upstream.pick(tried, opts.hashKey);
    if (!target) {
      // Every target was tried: the last failure says more than "none left".
      if (lastError) return done(lastError);
      const why = upstream.allDown() ? 'every target is unhealthy' : tried.size ? 'no target left to try' : 'no target';
      return done(new ProxyError('PRX_ERR_NO_TARGET', `upstream ${upstream.name}: ${why}`));
    }
    tried.add(target);
    target.inFlight++;
    const base = { host: target.host, port: target.port, allowHalfOpen: opts.allowHalfOpen ?? false, noDelay: true };
    const socket = target.connect ? tls.connect({ ...base, ...target.connect, ...(opts.alpn ? { ALPNProtocols: opts.alpn } : {}) }) : net.connect(base);
    const t0 = performance.now();
    let settled = false;
    abandon = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      target.inFlight--;
    };
    const fail = (err: ProxyError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      target.inFlight--;
      upstream.failed(target, err.code);
      if (cancelled) return;
      lastError = err;
      const cfg = upstream.config;
      const inTime = cfg.retry_timeout === 0 || performance.now() - start < cfg.retry_timeout;
      if (err.retryable && retries < cfg.retries && inTime) {
        retries++;
        return attempt();
      }
      done(err);
    };
    timer = setTimeout(() => fail(new ProxyError('PRX_ERR_UPSTREAM_CONNECT_TIMEOUT', `connecting to ${target.address} took longer than ${upstream.config.timeouts.connect} ms`)), upstream.config.timeouts.connect);
    socket.once(target.connect ? 'secureConnect' : 'connect', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeListener('error', onError);
      upstream.succeeded(target, performance.now() - t0);
      done(undefined, { target, socket, connectMs: performance.now() - start, retries });
    });
    const onError = (err: Error): void => fail(mapUpstreamError(err));
    socket.on('error', onError);
  };

  attempt();
  return {
    cancel() {
      cancelled = true;
      abandon?.();
    },
  };
}
