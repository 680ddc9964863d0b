/**
 * The undici Pool options that pick an upstream's protocol (`protocol: http1 | http2`). Read when
 * an endpoint's pool is built. http1: one request per connection at a time (no pipelining).
 * http2: streams multiplexed on each connection, over TLS (ALPN h2) or, without `tls`, over
 * cleartext h2c by prior knowledge (undici's `useH2c`, as its H2CClient does). gRPC needs http2.
 *
 * @example
 *   new Pool(origin, { ...protocolPoolOptions(config), connect: { ...protocolConnectOptions(config), ...tls } });
 */
import type { UpstreamConfig } from '../config/schema.ts';

/** Streams per upstream HTTP/2 connection (undici's and nginx's default is 100). */
const H2_STREAMS = 100;

export function protocolPoolOptions(config: UpstreamConfig): { pipelining: number; allowH2?: boolean; maxConcurrentStreams?: number } {
  if (config.protocol !== 'http2') return { pipelining: 1 };
  return { pipelining: H2_STREAMS, allowH2: true, maxConcurrentStreams: H2_STREAMS };
}

/** Connector options: h2c (HTTP/2 without TLS) needs undici told so, as there is no ALPN to say it. */
export function protocolConnectOptions(config: UpstreamConfig): { useH2c?: boolean } {
  return config.protocol === 'http2' && !config.tls ? { useH2c: true } : {};
}
