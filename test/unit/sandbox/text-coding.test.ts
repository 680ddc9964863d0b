/**
 * The isolate's TextDecoder and TextEncoder (bootstrap/text-coding.ts) against Node's own, which
 * follow the WHATWG Encoding standard: replacement characters, fatal errors, BOM handling,
 * streaming, and encodeInto's partial writes.
 */
import { describe, expect, it } from 'vitest';
import { TextEncoder as ScriptTextEncoder, makeTextDecoder } from '../../../src/sandbox/bootstrap/text-coding.ts';

const Decoder = makeTextDecoder();

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
}

/** Random byte strings biased toward UTF-8 lead/continuation bytes and edge values. */
function randomBytes(rnd: () => number, n: number): Uint8Array {
  const pick = [0x00, 0x41, 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0xa0, 0x9f, 0x90, 0x8f, 0xef, 0xbb];
  return Uint8Array.from({ length: n }, () => (rnd() % 3 === 0 ? rnd() & 255 : pick[rnd() % pick.length]!));
}

describe('TextDecoder (utf-8) in the isolate', () => {
  it('decodes like Node for valid text, invalid bytes, truncated sequences and surrogates', () => {
    const rnd = seeded(11);
    const cases: Uint8Array[] = [Buffer.from('plain'), Buffer.from('Grüße € 😀'), Uint8Array.of(0xed, 0xa0, 0x80), Uint8Array.of(0xf0, 0x9f, 0x98), Uint8Array.of(0xe0, 0x80, 0x80), Uint8Array.of(0xf4, 0x90, 0x80, 0x80), Uint8Array.of(0xc0, 0xaf)];
    for (let i = 0; i < 3000; i++) cases.push(randomBytes(rnd, rnd() % 12));
    const node = new TextDecoder();
    for (const b of cases) expect(new Decoder().decode(b)).toBe(node.decode(b));
  });

  it('fatal throws a TypeError on exactly the inputs Node rejects', () => {
    const rnd = seeded(5);
    for (let i = 0; i < 2000; i++) {
      const b = randomBytes(rnd, rnd() % 10);
      let want: string | Error;
      try {
        want = new TextDecoder('utf-8', { fatal: true }).decode(b);
      } catch (e) {
        want = e as Error;
      }
      const d = new Decoder('utf-8', { fatal: true });
      if (want instanceof Error) expect(() => d.decode(b)).toThrow(TypeError);
      else expect(d.decode(b)).toBe(want);
    }
  });

  it('stream: a sequence split anywhere decodes as the whole; the BOM goes once unless ignoreBOM', () => {
    const text = '\ufeffa€😀b ü';
    const bytes = Buffer.from(text);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const d = new Decoder();
      expect(d.decode(bytes.subarray(0, cut), { stream: true }) + d.decode(bytes.subarray(cut))).toBe(text.slice(1));
    }
    const d = new Decoder('UTF8', { ignoreBOM: true });
    expect(d.decode(bytes)).toBe(text);
    expect([d.encoding, d.fatal, d.ignoreBOM]).toEqual(['utf-8', false, true]);
    // A stream that ends mid-sequence gets one U+FFFD (or a TypeError when fatal).
    const e = new Decoder();
    expect(e.decode(Uint8Array.of(0x61, 0xe2, 0x82), { stream: true })).toBe('a');
    expect(e.decode()).toBe('\ufffd');
    expect(() => new Decoder('utf-8', { fatal: true }).decode(Uint8Array.of(0xe2))).toThrow(TypeError);
    expect(() => new Decoder('koi8-r')).toThrow(RangeError);
    expect(new Decoder().decode(new Uint16Array([0x6968]))).toBe('hi');
    expect(new Decoder().decode(Buffer.from('x'.repeat(20000) + 'ü').buffer)).toHaveLength(20001);
  });

  it('latin1, ascii and iso-8859-1 decode as windows-1252, as WHATWG and browsers do (Node maps 0x80–0x9F to C1 controls)', () => {
    const bytes = Uint8Array.of(0x41, 0x80, 0x81, 0x8d, 0x99, 0x9f, 0xa0, 0xe9, 0xff);
    for (const label of ['latin1', 'ISO-8859-1', ' ascii ', 'us-ascii', 'windows-1252', 'cp1252']) {
      const d = new Decoder(label, { fatal: true });
      expect(d.encoding).toBe('windows-1252');
      expect(d.decode(bytes, { stream: true })).toBe('A\u20ac\u0081\u008d\u2122\u0178\u00a0\u00e9\u00ff');
    }
  });

  it('UTF-16LE/BE decode like Node: random bytes, fatal, stream splits, BOM', () => {
    const rnd = seeded(23);
    const inputs: Uint8Array[] = [Uint8Array.of(0xff, 0xfe, 0x41, 0x00), Uint8Array.of(0xfe, 0xff, 0x00, 0x41), Uint8Array.of(0x3d, 0xd8, 0x00, 0xde), Uint8Array.of(0x00, 0xdc), Uint8Array.of(0x41)];
    for (let i = 0; i < 1500; i++) inputs.push(Uint8Array.from({ length: rnd() % 9 }, () => [0x00, 0x41, 0x80, 0x9f, 0xd8, 0xdb, 0xdc, 0xdf, 0xfe, 0xff, rnd() & 255][rnd() % 11]!));
    for (const label of ['utf-16le', 'utf-16', 'UTF-16BE']) {
      const mine = new Decoder(label);
      expect(mine.encoding).toBe(new TextDecoder(label).encoding);
      for (const b of inputs) {
        expect(new Decoder(label).decode(b)).toBe(new TextDecoder(label).decode(b));
        let want: string | undefined;
        try {
          want = new TextDecoder(label, { fatal: true }).decode(b);
        } catch {
          want = undefined;
        }
        const d = new Decoder(label, { fatal: true });
        if (want === undefined) expect(() => d.decode(b)).toThrow(TypeError);
        else expect(d.decode(b)).toBe(want);
        for (let cut = 0; cut <= b.length; cut++) {
          const s = new Decoder(label);
          const n = new TextDecoder(label);
          expect(s.decode(b.subarray(0, cut), { stream: true }) + s.decode(b.subarray(cut))).toBe(n.decode(b.subarray(0, cut), { stream: true }) + n.decode(b.subarray(cut)));
        }
      }
    }
    expect(new Decoder('utf-16le', { ignoreBOM: true }).decode(Uint8Array.of(0xff, 0xfe, 0x41, 0x00))).toBe('\ufeffA');
  });

  it('TextEncoder.encode and encodeInto match Node, never splitting a character', () => {
    const mine = new ScriptTextEncoder();
    const node = new TextEncoder();
    const rnd = seeded(9);
    const samples = ['', 'abc', 'Grüße', '€😀', 'lone \ud800', '\udc00 low first', 'end \ud83d'];
    for (let i = 0; i < 300; i++) samples.push(String.fromCharCode(...Array.from({ length: rnd() % 8 }, () => [0x41, 0xe9, 0x20ac, 0xd83d, 0xde00, 0xdc00, 0xffff][rnd() % 7]!)));
    for (const text of samples) {
      expect([...mine.encode(text)]).toEqual([...node.encode(text)]);
      for (let room = 0; room <= 10; room++) {
        const a = new Uint8Array(room);
        const b = new Uint8Array(room);
        expect(mine.encodeInto(text, a)).toEqual(node.encodeInto(text, b));
        expect([...a]).toEqual([...b]);
      }
    }
    expect(mine.encoding).toBe('utf-8');
    expect([...mine.encode()]).toEqual([]);
  });
});
