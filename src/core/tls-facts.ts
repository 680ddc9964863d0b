/**
 * What a script may know of a request's TLS connection (`ctx.request.tls`, and a stream's
 * `ctx.connection.clientCertificate`): the SNI, protocol and cipher, and the client certificate
 * the listener verified, as nginx's `$ssl_server_name`, `$ssl_protocol`, `$ssl_cipher` and
 * `$ssl_client_s_dn` / `_i_dn` / `_serial` / `_fingerprint` give them to Lua.
 *
 * Runs when a request's script session opens (only on routes with scripts). The facts are read
 * once per connection and kept with it, so requests on a kept-alive or HTTP/2 connection cost a
 * WeakMap lookup. Returns the JSON record the isolate parses (sandbox/bootstrap/context.ts), or ''
 * for a plain-TCP connection.
 */
import { clientHelloOf } from './tls-client-hello.ts';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { IncomingMessage } from 'node:http';

/** The record's shape (short keys: it rides in every request's init record). */
export interface TlsRecord {
  /** SNI; '' without. */
  n: string;
  /** Protocol, e.g. TLSv1.3. */
  p: string;
  /** Cipher (OpenSSL name). */
  c: string;
  /** The verified client certificate, when there is one. */
  cert?: {
    subject: string;
    issuer: string;
    serial: string;
    fingerprint256: string;
    notBefore: string;
    notAfter: string;
    subjectAltName: string;
  };
}

const known = new WeakMap<TLSSocket, string>();

/** RFC 2253 order (most specific first, comma-separated) from Node's one-RDN-per-line DN (already RFC 2253-escaped). */
function rfc2253(multiline: string): string {
  return multiline.split('\n').filter(Boolean).reverse().join(',');
}

function isoDate(s: string): string {
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? s : d.toISOString();
}

/** The TLS record of `socket` ('' when it is not TLS). */
export function tlsRecordOf(socket: Socket | undefined): string {
  if (!(socket instanceof TLSSocket)) return '';
  let rec = known.get(socket);
  if (rec !== undefined) return rec;
  // node reports no name on a resumed TLS 1.2 session: the ClientHello read before TLS says it.
  const servername = (socket as TLSSocket & { servername?: string | false }).servername || clientHelloOf(socket)?.serverName;
  const out: TlsRecord = { n: typeof servername === 'string' ? servername : '', p: socket.getProtocol() ?? '', c: socket.getCipher()?.name ?? '' };
  // Only a certificate the listener verified is shown (verify_client on/optional); with optional,
  // one that fails verification never gets here (the request is answered 400).
  const x = socket.authorized ? socket.getPeerX509Certificate() : undefined;
  if (x) {
    out.cert = {
      subject: rfc2253(x.subject),
      issuer: rfc2253(x.issuer),
      serial: x.serialNumber.toUpperCase(),
      fingerprint256: x.fingerprint256,
      notBefore: isoDate(x.validFrom),
      notAfter: isoDate(x.validTo),
      subjectAltName: x.subjectAltName ?? '',
    };
  }
  rec = JSON.stringify(out);
  known.set(socket, rec);
  return rec;
}

/** The TLS record of an HTTP/1 or HTTP/2 request's connection. */
export function requestTlsRecord(req: IncomingMessage): string {
  const h2 = (req as unknown as { stream?: { session?: { socket?: Socket } } }).stream;
  return tlsRecordOf(h2?.session?.socket ?? req.socket);
}
