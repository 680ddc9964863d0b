/**
 * The isolate's byte conversions (bootstrap/bytes.ts) against Node's Buffer, which they must match:
 * ctx.crypto digests in hex/base64/base64url and the UTF-8 of setBody/update strings.
 */
import { describe, expect, it } from 'vitest';
import { base64, hex, latin1, latin1Bytes, utf8Bytes } from '../../../src/sandbox/bootstrap/bytes.ts';

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
}

describe('bootstrap bytes', () => {
  it('hex, base64 and base64url match Buffer for every length 0..70 and random bytes', () => {
    const rnd = seeded(7);
    for (let n = 0; n <= 70; n++) {
      const b = Uint8Array.from({ length: n }, () => rnd() & 255);
      const buf = Buffer.from(b);
      expect(hex(b)).toBe(buf.toString('hex'));
      expect(base64(b)).toBe(buf.toString('base64'));
      expect(base64(b, true)).toBe(buf.toString('base64url'));
      expect(latin1(b)).toBe(buf.toString('latin1'));
      expect([...latin1Bytes(latin1(b))]).toEqual([...b]);
    }
  });

  it('utf8Bytes matches Buffer (and TextEncoder) for ASCII, 2-, 3- and 4-byte characters and lone surrogates', () => {
    const samples = ['', 'plain ascii', 'Jürgen', '€ and ✓', 'emoji 😀 pair', 'lone \ud800 high', 'lone \udc00 low', 'end \ud83d', '\ud83d\ude00\ud83d\ude00', 'x'.repeat(10_000) + 'ü'];
    const rnd = seeded(3);
    for (let i = 0; i < 200; i++) samples.push(String.fromCharCode(...Array.from({ length: 20 }, () => rnd() % 0x10000)));
    for (const s of samples) {
      expect(Buffer.from(utf8Bytes(s)).equals(Buffer.from(s, 'utf8'))).toBe(true);
      expect([...utf8Bytes(s)]).toEqual([...new TextEncoder().encode(s)]);
    }
  });
});
