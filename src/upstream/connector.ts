/**
 * How an endpoint's pool opens connections: undici's connector, with two things decided here.
 * Built once per endpoint (pool); runs for every new upstream connection.
 *
 * - **Timing:** `timeouts.connect` is kept to the millisecond by a timer of our own (undici's
 *   ticks coarsely: 100 ms fired after about a second), covering TCP and the TLS handshake.
 * - **TLS name:** SNI and the name the certificate is checked against are the upstream's, never
 *   the client's Host: `tls.sni`, else the target's host name, else (an IP literal) no SNI and a
 *   check against the IP, as nginx's defaults. undici would otherwise take both from each
 *   request's Host header, and reconnect whenever it changed. `servername` is the one value every
 *   request to this endpoint carries (see the exchange's dispatch), so undici never reconnects
 *   for a Host change.
 */
import { buildConnector, errors } from 'undici';
import type { TlsConnect } from './tls-options.ts';

export interface EndpointConnector {
  connect: buildConnector.connector;
  /** What each request's `servername` must be, so that undici keeps one connection for all; undefined without TLS. */
  servername: string | undefined;
}

export function endpointConnector(opts: { host: string; tls: TlsConnect | undefined; connectTimeoutMs: number; allowH2: boolean; useH2c: boolean }): EndpointConnector {
  const { tls, connectTimeoutMs } = opts;
  const base = buildConnector({ ...(tls ?? {}), allowH2: opts.allowH2, ...(opts.useH2c ? { useH2c: true } : {}), timeout: 0 } as buildConnector.BuildOptions);
  // tls.servername is the SNI already decided (connectOptionsFor); undefined for an IP literal.
  const name = tls?.servername;
  const connect: buildConnector.connector = (options, callback) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const socket = (base as unknown as (o: buildConnector.Options, cb: buildConnector.Callback) => import('node:net').Socket)({ ...options, servername: name }, (...args) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      callback(...args);
    });
    if (connectTimeoutMs > 0) {
      timer = setTimeout(() => {
        if (settled) return;
        socket.destroy(new errors.ConnectTimeoutError(`connect timeout: ${options.hostname}:${options.port} did not ${tls ? 'complete the TLS handshake' : 'accept'} within timeouts.connect (${connectTimeoutMs} ms)`));
      }, connectTimeoutMs);
    }
  };
  return { connect, servername: tls ? (name ?? opts.host) : undefined };
}
