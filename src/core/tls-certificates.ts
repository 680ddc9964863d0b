/**
 * The certificates of one TLS listener, ready for the handshake: a secure context per certificate
 * and the names each one answers for. Built with every generation (so a hot reload re-reads the
 * files); the listener asks the current generation's table on each new connection, so open
 * connections keep the context they were made with.
 *
 * Names come from the certificate itself: its subjectAltName DNS entries, else its subject CN.
 * `lookup()` prefers an exact name, then a `*.` wildcard covering exactly one label (RFC 6125),
 * then the first certificate (the default, also used for clients that send no SNI). A name may
 * have certificates of several key types (RSA and ECDSA, as nginx takes two `ssl_certificate`s):
 * `pick()` gives each client the one its ClientHello says it can verify (tls-client-hello.ts); of
 * two of the same key type the first listed wins. Every context refuses TLS renegotiation.
 *
 * @example
 *   const table = new CertificateTable(listener.tls);
 *   tls.createServer({ SNICallback: (name, cb) => cb(null, table.lookup(name)), ...table.serverOptions });
 */
import { X509Certificate, constants } from 'node:crypto';
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

/** One certificate's context, and the key type it signs with (rsa, ec, ed25519, ...). */
interface Choice {
  type: string;
  context: SecureContext;
  options: SecureContextOptions;
}

export class CertificateTable {
  /** Context of the first certificate: no SNI, or a name no certificate covers. */
  readonly default: SecureContext;
  /** The default certificate with the listener's settings, for `tls.Server#setSecureContext`. */
  readonly serverOptions: SecureContextOptions;
  /** Per name, one certificate per key type, in the order listed (the first of a type wins). */
  readonly #exact = new Map<string, Choice[]>();
  /** Keyed by what follows `*.` (a wildcard covers one more label). */
  readonly #wildcard = new Map<string, Choice[]>();
  /** The first certificate, then the first one of each other key type (clients without SNI). */
  readonly #fallback: Choice[] = [];

  /** Reads every certificate and key; throws ConfigError naming the file when one does not load. */
  constructor(config: ListenerTlsConfig) {
    let ca: Buffer | undefined;
    if (config.client_ca) ca = readOrFail(config.client_ca, 'tls.client_ca');
    const common: SecureContextOptions = {
      minVersion: config.min_version,
      // Client-initiated renegotiation (TLS 1.2) is a full handshake a client can repeat at will: refused, as nginx.
      secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
      ...(config.ciphers ? { ciphers: config.ciphers } : {}),
      ...(ca ? { ca } : {}),
    };
    for (const c of config.certificates) {
      const cert = readOrFail(c.cert, 'tls.certificates.cert');
      const key = readOrFail(c.key, 'tls.certificates.key');
      const options: SecureContextOptions = { ...common, cert, key };
      let choice: Choice;
      let names: string[];
      try {
        choice = { type: new X509Certificate(cert).publicKey.asymmetricKeyType ?? 'unknown', context: tls.createSecureContext(options), options };
        names = certificateNames(cert);
      } catch (err) {
        throw new ConfigError([`${c.cert}: cannot use certificate with key ${c.key}: ${(err as Error).message}`]);
      }
      if (!this.#fallback.some((f) => f.type === choice.type)) this.#fallback.push(choice);
      for (const name of names) {
        const map = name.startsWith('*.') ? this.#wildcard : this.#exact;
        const k = name.startsWith('*.') ? name.slice(2) : name;
        const list = map.get(k) ?? [];
        if (!list.some((x) => x.type === choice.type)) list.push(choice);
        map.set(k, list);
      }
    }
    this.default = this.#fallback[0]!.context;
    this.serverOptions = this.#fallback[0]!.options;
  }

  /** The certificates for a server name (exact, then a one-label wildcard), else the fallback ones. */
  #candidates(servername: string | undefined): Choice[] {
    if (!servername) return this.#fallback;
    const name = servername.toLowerCase().replace(/\.$/, '');
    const exact = this.#exact.get(name);
    if (exact) return exact;
    const dot = name.indexOf('.');
    if (dot > 0) {
      const wild = this.#wildcard.get(name.slice(dot + 1));
      if (wild) return wild;
    }
    return this.#fallback;
  }

  /** Secure context for an SNI server name (the first certificate listed for it); the default one when nothing matches. */
  lookup(servername: string): SecureContext {
    return this.#candidates(servername)[0]!.context;
  }

  /**
   * The context for a client, from its ClientHello: the name's certificate of the first key type
   * the client's signature algorithms accept (`keyTypes`, its order); without signature
   * algorithms (TLS 1.2 may omit them, meaning RSA) an RSA one; else the first listed.
   */
  pick(servername: string | undefined, keyTypes: readonly string[]): SecureContext {
    const list = this.#candidates(servername);
    if (list.length === 1) return list[0]!.context;
    const wanted = keyTypes.length ? keyTypes : ['rsa'];
    for (const t of wanted) {
      const hit = list.find((c) => c.type === t);
      if (hit) return hit.context;
    }
    return list[0]!.context;
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
