/**
 * Streaming UTF-8 framing for body_filter. Runs on the host for every response body chunk of a
 * route with a body_filter script. A multi-byte character split across network chunks is carried
 * (at most 3 bytes) into the next call instead of being broken; at eof everything left is decoded
 * (an incomplete tail becomes U+FFFD, as the platform decoder does). `next()` returns the text for
 * the script and the exact bytes that text stands for, so "unchanged" sends exactly those bytes:
 * never duplicated, never lost, even for bodies that are not valid UTF-8.
 *
 * @example
 *   const s = new Utf8Chunks();
 *   s.next(Buffer.from([0xe2, 0x82]), false); // { text: '', bytes: <empty>, same: false }
 *   s.next(Buffer.from([0xac]), true);        // { text: '€', bytes: <e2 82 ac>, same: false }
 */

/** Length of an incomplete UTF-8 sequence at the end of `b` (0–3). */
export function incompleteTail(b: Uint8Array): number {
  const len = b.length;
  for (let i = len - 1, seen = 1; i >= 0 && seen <= 3; i--, seen++) {
    const c = b[i]!;
    if ((c & 0xc0) === 0x80) continue; // continuation byte: keep looking for the lead
    const need = c >= 0xf0 && c <= 0xf7 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    return need > seen ? seen : 0;
  }
  return 0;
}

export interface Utf8Piece {
  /** Decoded text for the script. */
  text: string;
  /** The bytes `text` stands for. */
  bytes: Buffer;
  /** True when `bytes` is exactly the chunk passed in (nothing carried in or out). */
  same: boolean;
}

export class Utf8Chunks {
  #carry: Buffer | null = null;

  next(chunk: Buffer, eof: boolean): Utf8Piece {
    const data = this.#carry ? Buffer.concat([this.#carry, chunk]) : chunk;
    const carriedIn = this.#carry !== null;
    this.#carry = null;
    const tail = eof ? 0 : incompleteTail(data);
    const end = data.length - tail;
    if (tail) this.#carry = Buffer.from(data.subarray(end));
    const bytes = tail ? data.subarray(0, end) : data;
    return { text: bytes.toString('utf8'), bytes, same: !carriedIn && tail === 0 };
  }
}
