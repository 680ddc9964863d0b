/**
 * Runs inside the isolate, when a script builds `new TextDecoder(label)` with a label that is not
 * UTF-8: the WHATWG Encoding standard's decoders for windows-1252 (what `latin1`, `iso-8859-1`
 * and `ascii` mean there, §9) and UTF-16LE/BE (§14.2–14.3), with `fatal`, `ignoreBOM` and
 * `{ stream: true }` as for UTF-8. Any other label is a RangeError, as in browsers for labels they
 * do not know. Returns a `LegacyDecoder`, or undefined when the label names none of these.
 */

const WINDOWS_1252_LABELS = ['ansi_x3.4-1968', 'ascii', 'cp1252', 'cp819', 'csisolatin1', 'ibm819', 'iso-8859-1', 'iso-ir-100', 'iso8859-1', 'iso88591', 'iso_8859-1', 'iso_8859-1:1987', 'l1', 'latin1', 'us-ascii', 'windows-1252', 'x-cp1252'];
const UTF16LE_LABELS = ['csunicode', 'iso-10646-ucs-2', 'ucs-2', 'unicode', 'unicodefeff', 'utf-16', 'utf-16le'];
const UTF16BE_LABELS = ['unicodefffe', 'utf-16be'];
const ENCODING = new Map<string, 'windows-1252' | 'utf-16le' | 'utf-16be'>([
  ...WINDOWS_1252_LABELS.map((l) => [l, 'windows-1252'] as const),
  ...UTF16LE_LABELS.map((l) => [l, 'utf-16le'] as const),
  ...UTF16BE_LABELS.map((l) => [l, 'utf-16be'] as const),
]);

/** windows-1252 bytes 0x80–0x9F (the rest map to the same code point, as in latin1). */
const CP1252_HIGH = [
  0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039, 0x152, 0x8d, 0x17d, 0x8f,
  0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x2dc, 0x2122, 0x161, 0x203a, 0x153, 0x9d, 0x17e, 0x178,
];

export interface LegacyDecoder {
  readonly encoding: string;
  decode(bytes: Uint8Array, stream: boolean): string;
}

function fromUnits(units: number[]): string {
  let s = '';
  for (let i = 0; i < units.length; i += 4096) s += String.fromCharCode.apply(null, units.slice(i, i + 4096));
  return s;
}

class Windows1252Decoder implements LegacyDecoder {
  readonly encoding = 'windows-1252';
  decode(bytes: Uint8Array): string {
    const units = new Array<number>(bytes.length);
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      units[i] = b >= 0x80 && b <= 0x9f ? CP1252_HIGH[b - 0x80]! : b;
    }
    return fromUnits(units);
  }
}

class Utf16Decoder implements LegacyDecoder {
  readonly encoding: string;
  readonly #big: boolean;
  readonly #fatal: boolean;
  readonly #ignoreBOM: boolean;
  /** A byte waiting for its pair, or -1. */
  #byte = -1;
  /** A lead surrogate waiting for its trail, or -1. */
  #lead = -1;
  #started = false;

  constructor(encoding: 'utf-16le' | 'utf-16be', fatal: boolean, ignoreBOM: boolean) {
    this.encoding = encoding;
    this.#big = encoding === 'utf-16be';
    this.#fatal = fatal;
    this.#ignoreBOM = ignoreBOM;
  }

  #error(units: number[]): void {
    if (this.#fatal) {
      this.#byte = -1;
      this.#lead = -1;
      this.#started = false;
      throw new TypeError(`Failed to execute 'decode' on 'TextDecoder': the encoded data was not valid ${this.encoding}`);
    }
    units.push(0xfffd);
  }

  decode(bytes: Uint8Array, stream: boolean): string {
    const units: number[] = [];
    for (let i = 0; i < bytes.length; i++) {
      if (this.#byte < 0) {
        this.#byte = bytes[i]!;
        continue;
      }
      const unit = this.#big ? (this.#byte << 8) | bytes[i]! : (bytes[i]! << 8) | this.#byte;
      this.#byte = -1;
      if (this.#lead >= 0) {
        const lead = this.#lead;
        this.#lead = -1;
        if (unit >= 0xdc00 && unit <= 0xdfff) {
          units.push(lead, unit);
          continue;
        }
        this.#error(units);
      }
      if (unit >= 0xd800 && unit <= 0xdbff) this.#lead = unit;
      else if (unit >= 0xdc00 && unit <= 0xdfff) this.#error(units);
      else units.push(unit);
    }
    if (!stream && (this.#byte >= 0 || this.#lead >= 0)) {
      this.#byte = -1;
      this.#lead = -1;
      this.#error(units);
    }
    // A BOM at the very start of the stream is dropped unless ignoreBOM.
    if (!this.#started && units.length > 0) {
      this.#started = true;
      if (!this.#ignoreBOM && units[0] === 0xfeff) units.shift();
    }
    if (!stream) this.#started = false;
    return fromUnits(units);
  }
}

/** The decoder for a non-UTF-8 label (already trimmed and lower-cased); undefined when unknown. */
export function legacyDecoder(label: string, fatal: boolean, ignoreBOM: boolean): LegacyDecoder | undefined {
  const encoding = ENCODING.get(label);
  if (encoding === undefined) return undefined;
  return encoding === 'windows-1252' ? new Windows1252Decoder() : new Utf16Decoder(encoding, fatal, ignoreBOM);
}
