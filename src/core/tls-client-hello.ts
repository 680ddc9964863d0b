/**
 * Reads a TLS ClientHello before the TLS layer does (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2): the
 * server name the client asked for (RFC 6066 §3) and the key types its signature algorithms can
 * verify (RFC 8446 §4.2.3). Runs on each new connection of a TLS listener (`sniffClientHello`),
 * which then hands the socket, with the bytes put back, to the TLS server. What it learns:
 *
 * - the certificate's key type is chosen per client (node's SNI callback can switch only one
 *   certificate, so an RSA and an ECDSA certificate for one name need the choice made here);
 * - the server name is known also on a resumed TLS 1.2 session, where node reports none.
 *
 * Parsing is best effort and bounded: a hello that is not one TLS record of at most 16 KiB, or
 * does not parse, gives no facts (the TLS layer then decides alone, as before).
 *
 * @example
 *   sniffClientHello(socket, 10_000, (s, hello) => tlsServer.emit('connection', s));
 */
import type { Socket } from 'node:net';
import { readFirstBytes } from './first-bytes.ts';

export interface ClientHelloFacts {
  /** The SNI host name, lower case; undefined when the client sent none. */
  serverName: string | undefined;
  /** Key types the client's signature algorithms accept, in its order of preference; empty when it sent none (TLS 1.2: RSA). */
  keyTypes: string[];
}

const RECORD_HEADER = 5;
const MAX_RECORD = 16 * 1024;

/** The key type a SignatureScheme (RFC 8446 §4.2.3) signs with. */
function keyTypeOf(scheme: number): string | undefined {
  const hash = scheme >> 8;
  const sig = scheme & 0xff;
  if (scheme === 0x0807) return 'ed25519';
  if (scheme === 0x0808) return 'ed448';
  if (hash === 0x08 && sig >= 0x04 && sig <= 0x06) return 'rsa'; // rsa_pss_rsae_*
  if (hash === 0x08 && sig >= 0x09 && sig <= 0x0b) return 'rsa-pss'; // rsa_pss_pss_*
  if (hash >= 0x01 && hash <= 0x06 && sig === 0x01) return 'rsa'; // rsa_pkcs1_*
  if (hash >= 0x01 && hash <= 0x06 && sig === 0x03) return 'ec'; // ecdsa_*
  return undefined;
}

/**
 * The facts of the ClientHello at the start of `buf`: 'more' when the first record is not all
 * there yet, undefined when `buf` does not start with a ClientHello that parses.
 */
export function readClientHello(buf: Buffer): ClientHelloFacts | 'more' | undefined {
  if (buf.length < 1 || buf[0] !== 0x16) return undefined;
  if (buf.length < RECORD_HEADER) return 'more';
  const length = buf.readUInt16BE(3);
  if (length > MAX_RECORD) return undefined;
  if (buf.length < RECORD_HEADER + length) return 'more';
  const rec = buf.subarray(RECORD_HEADER, RECORD_HEADER + length);
  try {
    if (rec[0] !== 0x01) return undefined; // not a ClientHello
    const helloLength = (rec[1]! << 16) | (rec[2]! << 8) | rec[3]!;
    if (helloLength + 4 > rec.length) return undefined; // split over records: leave it to TLS
    let at = 4 + 2 + 32; // type + length, legacy_version, random
    at += 1 + rec[at]!; // legacy_session_id
    at += 2 + rec.readUInt16BE(at); // cipher_suites
    at += 1 + rec[at]!; // legacy_compression_methods
    const facts: ClientHelloFacts = { serverName: undefined, keyTypes: [] };
    if (at >= 4 + helloLength) return facts; // no extensions
    const end = at + 2 + rec.readUInt16BE(at);
    at += 2;
    while (at + 4 <= end) {
      const type = rec.readUInt16BE(at);
      const size = rec.readUInt16BE(at + 2);
      const body = rec.subarray(at + 4, at + 4 + size);
      at += 4 + size;
      if (type === 0 && body.length >= 5 && body[2] === 0) {
        // server_name: list length, name type 0 (host_name), name length, name
        const n = body.readUInt16BE(3);
        facts.serverName = body.subarray(5, 5 + n).toString('latin1').toLowerCase();
      } else if (type === 13 && body.length >= 2) {
        const n = body.readUInt16BE(0);
        for (let i = 2; i + 1 < 2 + n && i + 1 < body.length; i += 2) {
          const t = keyTypeOf(body.readUInt16BE(i));
          if (t && !facts.keyTypes.includes(t)) facts.keyTypes.push(t);
        }
      }
    }
    return facts;
  } catch {
    return undefined; // a length pointing past the record
  }
}

const kHello = Symbol('scriptgate.clientHello');
type HelloSocket = Socket & { [kHello]?: ClientHelloFacts };

/** The ClientHello facts `sniffClientHello` found for the TCP socket under a TLS socket (via its `_parent`). */
export function clientHelloOf(socket: Socket | undefined): ClientHelloFacts | undefined {
  let s = socket as (HelloSocket & { _parent?: Socket }) | undefined;
  for (let i = 0; s && i < 3; i++, s = s._parent as typeof s) if (s[kHello]) return s[kHello];
  return undefined;
}

/**
 * Reads the first bytes of a TLS connection until the ClientHello's first record is in (or they
 * cannot be one), notes its facts on the socket, puts the bytes back and hands the socket on,
 * paused. A client that sends nothing for `timeoutMs` is dropped.
 */
export function sniffClientHello(socket: Socket, timeoutMs: number, dispatch: (socket: Socket) => void): void {
  let facts: ClientHelloFacts | 'more' | undefined;
  readFirstBytes(socket, timeoutMs, (buf) => (facts = readClientHello(buf)) !== 'more', (s) => {
    if (facts && facts !== 'more') (s as HelloSocket)[kHello] = facts;
    dispatch(s);
  });
}
