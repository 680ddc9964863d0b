/**
 * Runs inside the isolate: the globals `TextEncoder` and `TextDecoder` per the WHATWG Encoding
 * standard. The decoder (§8.1.1, §7) has `fatal` (a TypeError instead of U+FFFD), `ignoreBOM`,
 * and `decode(bytes, { stream: true })` across chunk boundaries, for UTF-8 here and for
 * windows-1252 (`latin1`, `ascii`) and UTF-16LE/BE in legacy-decoders.ts; the encoder has
 * `encode` and `encodeInto`, as scripts written for workerd or browsers expect.
 * Default: UTF-8, replacement characters, BOM stripped.
 */
import { asBytes, utf8Bytes, utf8Latin1 } from './bytes.ts';
import { legacyDecoder, type LegacyDecoder } from './legacy-decoders.ts';

/** The labels of UTF-8 (WHATWG Encoding §4.2). */
const UTF8_LABELS = new Set(['unicode-1-1-utf-8', 'unicode11utf8', 'unicode20utf8', 'utf-8', 'utf8', 'x-unicode20utf8']);

interface DecoderOptions {
  fatal?: boolean;
  ignoreBOM?: boolean;
}

/** What `new TextDecoder()` gives a script. */
export interface ScriptTextDecoder {
  readonly encoding: string;
  readonly fatal: boolean;
  readonly ignoreBOM: boolean;
  decode(input?: ArrayBuffer | ArrayBufferView | null, options?: { stream?: boolean }): string;
}

function bytesOf(input: unknown): Uint8Array {
  if (input === undefined || input === null) return new Uint8Array(0);
  const bytes = asBytes(input);
  if (bytes) return bytes;
  throw new TypeError("Failed to execute 'decode' on 'TextDecoder': input must be an ArrayBuffer or ArrayBufferView");
}

/** Builds the TextDecoder class (a fresh one per call: the bootstrap keeps one scripts cannot change). */
export function makeTextDecoder(): new (label?: string, options?: DecoderOptions) => ScriptTextDecoder {
  return class TextDecoder {
    readonly #fatal: boolean;
    readonly #ignoreBOM: boolean;
    readonly #other: LegacyDecoder | undefined;
    // Decoder state kept between stream calls.
    #needed = 0;
    #seen = 0;
    #cp = 0;
    #lower = 0x80;
    #upper = 0xbf;
    #bomDone = false;

    constructor(label: string = 'utf-8', options: { fatal?: boolean; ignoreBOM?: boolean } = {}) {
      const name = String(label).trim().toLowerCase();
      this.#fatal = Boolean(options?.fatal);
      this.#ignoreBOM = Boolean(options?.ignoreBOM);
      if (!UTF8_LABELS.has(name)) {
        this.#other = legacyDecoder(name, this.#fatal, this.#ignoreBOM);
        if (!this.#other) throw new RangeError(`Failed to construct 'TextDecoder': the encoding label ${JSON.stringify(label)} is not supported`);
      }
    }
    get encoding(): string {
      return this.#other?.encoding ?? 'utf-8';
    }
    get fatal(): boolean {
      return this.#fatal;
    }
    get ignoreBOM(): boolean {
      return this.#ignoreBOM;
    }

    decode(input?: ArrayBuffer | ArrayBufferView | null, options?: { stream?: boolean }): string {
      const bytes = bytesOf(input);
      const stream = Boolean(options?.stream);
      if (this.#other) return this.#other.decode(bytes, stream);
      const units: number[] = [];
      let out = '';
      const error = (): void => {
        if (this.#fatal) {
          this.#reset();
          this.#bomDone = false;
          throw new TypeError("Failed to execute 'decode' on 'TextDecoder': the encoded data was not valid UTF-8");
        }
        units.push(0xfffd);
      };
      const n = bytes.length;
      for (let i = 0; i < n; i++) {
        const b = bytes[i]!;
        if (this.#needed === 0 && b < 0x80) {
          // A run of ASCII goes over in one piece.
          let j = i + 1;
          while (j < n && bytes[j]! < 0x80 && j - i < 8192) j++;
          if (units.length > 0) {
            out += this.#text(units);
            units.length = 0;
          }
          this.#bomDone = true;
          out += String.fromCharCode.apply(null, bytes.subarray(i, j) as unknown as number[]);
          i = j - 1;
          continue;
        }
        if (this.#needed === 0) {
          if (b >= 0xc2 && b <= 0xdf) {
            this.#needed = 1;
            this.#cp = b & 0x1f;
          } else if (b >= 0xe0 && b <= 0xef) {
            if (b === 0xe0) this.#lower = 0xa0;
            if (b === 0xed) this.#upper = 0x9f;
            this.#needed = 2;
            this.#cp = b & 0xf;
          } else if (b >= 0xf0 && b <= 0xf4) {
            if (b === 0xf0) this.#lower = 0x90;
            if (b === 0xf4) this.#upper = 0x8f;
            this.#needed = 3;
            this.#cp = b & 7;
          } else error();
        } else if (b < this.#lower || b > this.#upper) {
          // An unexpected byte ends the sequence (one U+FFFD) and is decoded again on its own.
          this.#reset();
          error();
          i--;
        } else {
          this.#lower = 0x80;
          this.#upper = 0xbf;
          this.#cp = (this.#cp << 6) | (b & 0x3f);
          if (++this.#seen === this.#needed) {
            const cp = this.#cp;
            this.#reset();
            if (cp > 0xffff) units.push(0xd800 + ((cp - 0x10000) >> 10), 0xdc00 + ((cp - 0x10000) & 0x3ff));
            else units.push(cp);
          }
        }
        if (units.length >= 8192) {
          out += this.#text(units);
          units.length = 0;
        }
      }
      if (!stream && this.#needed !== 0) {
        this.#reset();
        error();
      }
      out += this.#text(units);
      if (!stream) this.#bomDone = false;
      return out;
    }

    #reset(): void {
      this.#needed = 0;
      this.#seen = 0;
      this.#cp = 0;
      this.#lower = 0x80;
      this.#upper = 0xbf;
    }

    /** Code units to a string, dropping a BOM at the very start of the stream unless ignoreBOM. */
    #text(units: number[]): string {
      let from = 0;
      if (!this.#bomDone && units.length > 0) {
        this.#bomDone = true;
        if (!this.#ignoreBOM && units[0] === 0xfeff) from = 1;
      }
      let s = '';
      for (let i = from; i < units.length; i += 4096) s += String.fromCharCode.apply(null, units.slice(i, Math.min(i + 4096, units.length)));
      return s;
    }
  };
}

/** `TextEncoder`: UTF-8 only, as the standard; a lone surrogate becomes U+FFFD. */
export class TextEncoder {
  get encoding(): string {
    return 'utf-8';
  }
  encode(input: string = ''): Uint8Array {
    return utf8Bytes(String(input));
  }
  /** Writes as much of `source` as fits whole into `destination`; `read` counts UTF-16 code units. */
  encodeInto(source: string, destination: Uint8Array): { read: number; written: number } {
    if (!(destination instanceof Uint8Array)) throw new TypeError("Failed to execute 'encodeInto' on 'TextEncoder': destination must be a Uint8Array");
    const src = String(source);
    let read = 0;
    let written = 0;
    while (read < src.length) {
      // One code point at a time: a surrogate pair is two units, anything else one.
      const c = src.charCodeAt(read);
      const d = src.charCodeAt(read + 1);
      const units = c >= 0xd800 && c < 0xdc00 && d >= 0xdc00 && d < 0xe000 ? 2 : 1;
      const bytes = utf8Latin1(src.slice(read, read + units));
      if (written + bytes.length > destination.length) break;
      for (let i = 0; i < bytes.length; i++) destination[written + i] = bytes.charCodeAt(i);
      written += bytes.length;
      read += units;
    }
    return { read, written };
  }
}
