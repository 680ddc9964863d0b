/**
 * Runs inside the isolate, when the bootstrap loads: gives scripts the pure web globals a V8
 * isolate lacks and workerd or a browser has, from well-kept polyfills (nothing of the host is
 * behind them): `URL`, `URLSearchParams`, `atob` and `btoa` from core-js (`core-js-pure`, the
 * WHATWG URL parser), WHATWG `TextEncoder`/`TextDecoder` (text-coding.ts: `encodeInto`, `fatal`,
 * `ignoreBOM`, `stream`; UTF-8, windows-1252 and UTF-16), and
 * `crypto.getRandomValues`/`randomUUID` (script-crypto.ts). A group loads when the isolate is
 * built if the tenant's code names it (tenant-sandbox.ts `preload`), else on the first read of any
 * of its names, so an isolate whose scripts never touch them pays only for parsing (the
 * bootstrap's V8 code cache makes that small); a load a timeout cuts off gets the isolate rebuilt
 * (first-use-load.ts). A script may still assign its own.
 *
 * Timers, `fetch` and the rest of the host stay out (see DESIGN.md: a script reaches nothing but
 * its request).
 */
import { webCrypto } from './script-crypto.ts';
import { TextEncoder, makeTextDecoder } from './text-coding.ts';
import { firstUseLoad } from './first-use-load.ts';

declare const require: (id: string) => unknown;

type Globals = Record<string, unknown>;
const g = globalThis as unknown as Globals;

/** Names still behind their getter (a script's own assignment takes one out). */
const lazy = new Set<string>();

function settle(name: string, value: unknown): void {
  Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
}

/**
 * Defines `names` as getters that load the whole group on the first read of any. A polyfill looks
 * for a native one while it loads (core-js's URL checks for a global URL), so during the load
 * every name of the group reads as absent.
 */
function lazyGroup(names: readonly string[], load: () => Globals): void {
  const loadAll = (): void => {
    const mine = names.filter((n) => lazy.has(n));
    for (const n of mine) {
      lazy.delete(n);
      settle(n, undefined);
    }
    const loaded = firstUseLoad(load);
    for (const n of mine) settle(n, loaded[n]);
  };
  for (const name of names) {
    lazy.add(name);
    Object.defineProperty(globalThis, name, {
      configurable: true,
      enumerable: false,
      get() {
        loadAll();
        return g[name];
      },
      set(value: unknown) {
        lazy.delete(name);
        settle(name, value);
      },
    });
  }
}

let utf8: { decode(b: Uint8Array): string } | undefined;

/** UTF-8 bytes to text (U+FFFD for bad bytes), whatever a script did to the global TextDecoder. */
export function utf8Decode(bytes: Uint8Array): string {
  utf8 ??= new (makeTextDecoder())();
  return utf8.decode(bytes);
}

export function installWebGlobals(): void {
  lazyGroup(['URL', 'URLSearchParams', 'atob', 'btoa'], () => ({
    URL: require('core-js-pure/actual/url'),
    URLSearchParams: require('core-js-pure/actual/url-search-params'),
    atob: require('core-js-pure/actual/atob'),
    btoa: require('core-js-pure/actual/btoa'),
  }));
  settle('TextEncoder', TextEncoder);
  settle('TextDecoder', makeTextDecoder());
  // Random bytes from the host's CSPRNG; hashes are on ctx.crypto (script-crypto.ts).
  settle('crypto', webCrypto);
}
