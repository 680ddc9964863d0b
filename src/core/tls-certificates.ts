/**
 * The certificates of one TLS listener, ready for the handshake: a secure context per certificate
 * and the names each one answers for. Built with every generation (so a hot reload re-reads the
 * files); the listener asks the current generation's table on each new connection, so open
 * connections keep the context they were made with.
 *
 * Names come from the certificate itself: its subjectAltName DNS entries, else its subject CN.
 * `lookup()` prefers an exact name, then a `*.` wildcard covering exactly one label (RFC 6125),
 * then the first certificate (the default, also used for clients that send no SNI).
 *
 * @example
 *   const table = new CertificateTable(listener.tls);
 *   tls.createServer({ SNICallback: (name, cb) => cb(null, table.lookup(name)), ...table.serverOptions });
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls, { type SecureContext, type SecureContextOptions, type TLSSocket } from 'node:tls';
import type { ListenerTlsConfig } from '../config/schema.ts';
import { ConfigError } from '../config/load.ts';

/** Names a PEM certificate answers for (lower case): SAN DNS names, else the subject CN. */
export function certificateNames(pem: Buffer | string): string[] {
  const x509 = new X509Certificate(pem);
  const names: string[] = [];
  for (const part of (x509.subjectAltName ?? '').split(',')) {
    const m = /^\s*DNS:(.+)$/.exec(part);
    if (m) names.push(m[1]!.trim().toLowerCase());
  }
  if (names.length === 0) {
    const cn = /(?:^|\n)CN=([^\n]+)/.exec(x509.subject);
    if (cn) names.push(cn[1]!.trim().toLowerCase());
  }
  return names;
}

export class CertificateTable {
  /** Context of the first certificate: no SNI, or a name no certificate covers. */
  readonly default: SecureContext;
  /** The default certificate with the listener's settings, for `tls.Server#setSecureContext`. */
  readonly serverOptions: SecureContextOptions;
  readonly #exact = new Map<string, SecureContext>();
  /** Keyed by what follows `*.` (a wildcard covers one more label). */
  readonly #wildcard = new Map<string, SecureContext>();

  /** Reads every certificate and key; throws ConfigError naming the file when one does not load. */
  constructor(config: ListenerTlsConfig) {
    let ca: Buffer | undefined;
    if (config.client_ca) ca = readOrFail(config.client_ca, 'tls.client_ca');
    const common: SecureContextOptions = {
      minVersion: config.min_version,
      ...(config.ciphers ? { ciphers: config.ciphers } : {}),
      ...(ca ? { ca } : {}),
    };
    let first: SecureContextOptions | undefined;
    let firstContext: SecureContext | undefined;
    for (const c of config.certificates) {
      const cert = readOrFail(c.cert, 'tls.certificates.cert');
      const key = readOrFail(c.key, 'tls.certificates.key');
      const options: SecureContextOptions = { ...common, cert, key };
      let context: SecureContext;
      let names: string[];
      try {
        context = tls.createSecureContext(options);
        names = certificateNames(cert);
      } catch (err) {
        throw new ConfigError([`${c.cert}: cannot use certificate with key ${c.key}: ${(err as Error).message}`]);
      }
      first ??= options;
      firstContext ??= context;
      for (const name of names) {
        const map = name.startsWith('*.') ? this.#wildcard : this.#exact;
        const key = name.startsWith('*.') ? name.slice(2) : name;
        if (!map.has(key)) map.set(key, context); // the first certificate listing a name wins
      }
    }
    this.default = firstContext!;
    this.serverOptions = first!;
  }

  /** Secure context for an SNI server name; the default one when nothing matches. */
  lookup(servername: string): SecureContext {
    const name = servername.toLowerCase().replace(/\.$/, '');
    const exact = this.#exact.get(name);
    if (exact) return exact;
    const dot = name.indexOf('.');
    if (dot > 0) {
      const wild = this.#wildcard.get(name.slice(dot + 1));
      if (wild) return wild;
    }
    return this.default;
  }
}

function readOrFail(file: string, field: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError([`${file}: cannot read ${field}: ${(err as Error).message}`]);
  }
}

/**
 * True when a TLS client sent a certificate that failed verification against `client_ca`: what
 * `verify_client: optional` refuses (one without a certificate is let in). Runs once per connection.
 */
export function sentUnverifiedClientCertificate(socket: TLSSocket): boolean {
  if (socket.authorized) return false;
  const cert = socket.getPeerCertificate();
  return !!cert && Object.keys(cert).length > 0;
}
