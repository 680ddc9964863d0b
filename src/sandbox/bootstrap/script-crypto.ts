/**
 * Runs inside the isolate: `ctx.crypto` (runtime-api ScriptCrypto) — synchronous hashes and HMACs
 * in the shape of Node's `crypto.createHash`/`createHmac`, a constant-time compare, and random
 * bytes — plus the standard global `crypto.getRandomValues`/`randomUUID`. What a script needs to
 * check a JWT (HS256), a signed webhook (GitHub's `X-Hub-Signature-256` over `ctx.request.body`)
 * or a signed cookie, like OpenResty's `ngx.hmac_sha1` and lua-resty-string.
 *
 * Hashes are @noble/hashes (audited, pure JS), loaded on first use. Random bytes come from the
 * host's CSPRNG through the one `__sgRandom` callback (a count in, a latin1 string out), taken from
 * the global when the bootstrap loads, before any tenant code runs.
 */
import { asBytes, base64, hex, latin1, latin1Bytes, utf8Bytes } from './bytes.ts';
import { firstUseLoad } from './first-use-load.ts';

declare const require: (id: string) => unknown;

type Bytes = Uint8Array;
interface NobleHash {
  update(data: Bytes): NobleHash;
  digest(): Bytes;
}
interface NobleHashFn {
  (msg: Bytes): Bytes;
  create(): NobleHash;
}
type HmacFn = { create(hash: NobleHashFn, key: Bytes): NobleHash };

const g = globalThis as unknown as { __sgRandom?: (n: number) => string };
const hostRandom = g.__sgRandom;
delete g.__sgRandom;

/** The largest getRandomValues request (as Web Crypto: 65536 bytes). */
const MAX_RANDOM = 65536;

let algorithms: Record<string, NobleHashFn> | undefined;
let hmacImpl: HmacFn | undefined;

/** 'SHA-256', 'sha256' and 'SHA256' all name sha256. */
function algorithm(name: unknown): NobleHashFn {
  algorithms ??= firstUseLoad(() => {
    const sha2 = require('@noble/hashes/sha2.js') as Record<string, NobleHashFn>;
    const legacy = require('@noble/hashes/legacy.js') as Record<string, NobleHashFn>;
    return { sha1: legacy.sha1!, md5: legacy.md5!, sha256: sha2.sha256!, sha384: sha2.sha384!, sha512: sha2.sha512! };
  });
  const key = typeof name === 'string' ? name.toLowerCase().replace(/-/g, '') : '';
  const fn = algorithms[key];
  if (!fn) throw new TypeError(`unsupported hash ${JSON.stringify(name)} (supported: sha256, sha384, sha512, sha1, md5)`);
  return fn;
}

function toBytes(data: unknown, what: string): Bytes {
  if (typeof data === 'string') return utf8Bytes(data);
  const bytes = asBytes(data);
  if (bytes) return bytes;
  throw new TypeError(`${what}: expected a string or bytes (Uint8Array), got ${data === null ? 'null' : typeof data}`);
}

export type DigestEncoding = 'hex' | 'base64' | 'base64url' | 'latin1' | 'binary';

/** A running hash or HMAC: `update()` as often as needed, then one `digest()`. */
export class ScriptHash {
  #h: NobleHash | null;
  readonly #what: string;
  constructor(h: NobleHash, what: string) {
    this.#h = h;
    this.#what = what;
  }
  update(data: string | Uint8Array): this {
    if (!this.#h) throw new Error(`${this.#what}: digest() was already called`);
    this.#h.update(toBytes(data, `${this.#what}.update()`));
    return this;
  }
  digest(): Uint8Array;
  digest(encoding: DigestEncoding): string;
  digest(encoding?: DigestEncoding): Uint8Array | string {
    const h = this.#h;
    if (!h) throw new Error(`${this.#what}: digest() was already called`);
    this.#h = null;
    const out = h.digest();
    switch (encoding) {
      case undefined:
        return out;
      case 'hex':
        return hex(out);
      case 'base64':
        return base64(out);
      case 'base64url':
        return base64(out, true);
      case 'latin1':
      case 'binary':
        return latin1(out);
      default:
        throw new TypeError(`${this.#what}.digest(): unknown encoding ${JSON.stringify(encoding)} (hex, base64, base64url, latin1)`);
    }
  }
}

/** `count` bytes from the host's CSPRNG. */
export function randomBytes(count: number): Uint8Array {
  if (!Number.isInteger(count) || count < 0 || count > MAX_RANDOM) throw new RangeError(`randomBytes(): count must be an integer from 0 to ${MAX_RANDOM}, got ${String(count)}`);
  if (!hostRandom) throw new Error('randomBytes(): no random source in this context');
  return latin1Bytes(hostRandom(count));
}

/** RFC 9562 version 4 UUID. */
export function randomUUID(): string {
  const b = randomBytes(16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = hex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** `ctx.crypto`: one frozen object for every request. */
export const scriptCrypto = Object.freeze({
  createHash(alg: string): ScriptHash {
    return new ScriptHash(algorithm(alg).create(), `createHash(${JSON.stringify(alg)})`);
  },
  createHmac(alg: string, key: string | Uint8Array): ScriptHash {
    const fn = algorithm(alg);
    hmacImpl ??= firstUseLoad(() => (require('@noble/hashes/hmac.js') as { hmac: HmacFn }).hmac);
    return new ScriptHash(hmacImpl.create(fn, toBytes(key, 'createHmac() key')), `createHmac(${JSON.stringify(alg)})`);
  },
  /**
   * Compares in time that depends only on the length: for a computed MAC against one the client
   * sent. Strings compare as UTF-8. Different lengths are simply unequal (no throw, unlike Node).
   */
  timingSafeEqual(a: string | Uint8Array, b: string | Uint8Array): boolean {
    const x = toBytes(a, 'timingSafeEqual()');
    const y = toBytes(b, 'timingSafeEqual()');
    if (x.length !== y.length) return false;
    let d = 0;
    for (let i = 0; i < x.length; i++) d |= x[i]! ^ y[i]!;
    return d === 0;
  },
  randomBytes,
  randomUUID,
});

/** The standard global: `crypto.getRandomValues(typedArray)` and `crypto.randomUUID()` (no `subtle`: it is asynchronous). */
export const webCrypto = Object.freeze({
  getRandomValues<T extends ArrayBufferView>(array: T): T {
    if (!(array instanceof Int8Array || array instanceof Uint8Array || array instanceof Uint8ClampedArray || array instanceof Int16Array || array instanceof Uint16Array || array instanceof Int32Array || array instanceof Uint32Array || array instanceof BigInt64Array || array instanceof BigUint64Array)) {
      throw new TypeError('crypto.getRandomValues(): expected an integer typed array');
    }
    if (array.byteLength > MAX_RANDOM) throw new RangeError(`crypto.getRandomValues(): ${array.byteLength} bytes is more than ${MAX_RANDOM}`);
    new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(randomBytes(array.byteLength));
    return array;
  },
  randomUUID,
});
