/**
 * Runs inside the isolate: conversions between the byte forms the bootstrap handles — Uint8Array,
 * latin1 strings (one char per byte: how bytes cross to the host) and UTF-8 text — and the
 * hex/base64 encodings of `ctx.crypto` digests. Pure functions; nothing here reaches the host.
 */

/** A Uint8Array over an ArrayBuffer or any ArrayBufferView, without copying; undefined for anything else. */
export function asBytes(input: unknown): Uint8Array | undefined {
  if (input instanceof Uint8Array) return input;
  if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  return undefined;
}

/** Bytes as a latin1 string (one char per byte). */
export function latin1(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192) as unknown as number[]);
  return s;
}

/** A latin1 string's bytes (chars above 0xFF keep their low byte, as Buffer's 'latin1'). */
export function latin1Bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** A string's UTF-8 bytes as a latin1 string (a lone surrogate becomes U+FFFD, as TextEncoder does). */
export function utf8Latin1(str: string): string {
  let out = '';
  let run = 0;
  for (let i = 0; i < str.length; i++) {
    let c = str.charCodeAt(i);
    if (c < 0x80) continue;
    out += str.slice(run, i);
    if (c < 0x800) out += String.fromCharCode(0xc0 | (c >> 6), 0x80 | (c & 63));
    else {
      if (c >= 0xd800 && c < 0xe000) {
        const next = str.charCodeAt(i + 1);
        if (c < 0xdc00 && next >= 0xdc00 && next < 0xe000) {
          c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
          i++;
          out += String.fromCharCode(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
          run = i + 1;
          continue;
        }
        c = 0xfffd;
      }
      out += String.fromCharCode(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    }
    run = i + 1;
  }
  return run === 0 ? str : out + str.slice(run);
}

/** A string's UTF-8 bytes. */
export function utf8Bytes(str: string): Uint8Array {
  return latin1Bytes(utf8Latin1(str));
}

const HEX = '0123456789abcdef';
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

export function hex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += HEX[b >> 4]! + HEX[b & 15]!;
  return s;
}

/** RFC 4648 base64 (padded), or base64url (RFC 4648 §5, unpadded, as Node's 'base64url'). */
export function base64(bytes: Uint8Array, url = false): string {
  let s = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    s += B64[n >> 18]! + B64[(n >> 12) & 63]! + B64[(n >> 6) & 63]! + B64[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest > 0) {
    const n = (bytes[i]! << 16) | (rest === 2 ? bytes[i + 1]! << 8 : 0);
    s += B64[n >> 18]! + B64[(n >> 12) & 63]! + (rest === 2 ? B64[(n >> 6) & 63]! : '=') + '=';
  }
  return url ? s.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '') : s;
}
