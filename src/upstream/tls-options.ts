/**
 * TLS origination settings of an upstream, turned into the `connect` options of its undici pools
 * and health probes. Read once when the upstream is built (files are loaded then). Defaults:
 * certificate verification on, the system CA store unless `tls.ca` is set, SNI = `tls.sni`, else
 * the target's host name (none for an IP literal, as TLS forbids it). A client certificate
 * (`tls.cert` + `tls.key`) is presented when the origin asks for one (mTLS).
 *
 * Pools are per target per upstream, and TLS settings are per upstream, so two upstreams that
 * reach the same address with different SNI or certificates never share a connection.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import type { UpstreamConfig } from '../config/schema.ts';

export interface TlsConnect {
  servername?: string;
  rejectUnauthorized: boolean;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** Reads the upstream's CA and client certificate files; undefined for plain-HTTP upstreams. */
export function loadTls(tls: UpstreamConfig['tls']): TlsConnect | undefined {
  if (!tls) return undefined;
  return {
    ...(tls.sni ? { servername: tls.sni } : {}),
    rejectUnauthorized: tls.verify,
    ...(tls.ca ? { ca: readFileSync(tls.ca) } : {}),
    ...(tls.cert ? { cert: readFileSync(tls.cert) } : {}),
    ...(tls.key ? { key: readFileSync(tls.key) } : {}),
  };
}

/** Connect options for one target host: the upstream's TLS settings with SNI filled in. */
export function connectOptionsFor(tls: TlsConnect | undefined, host: string): TlsConnect | undefined {
  if (!tls) return undefined;
  if (tls.servername || net.isIP(host)) return tls;
  return { ...tls, servername: host };
}
