/**
 * Runs inside the isolate, when the bootstrap loads: gives scripts the pure web globals a V8
 * isolate lacks and workerd or a browser has — `URL`, `URLSearchParams`, `atob` and `btoa` —
 * from core-js (`core-js-pure`, the WHATWG URL parser and base64 of the well-kept polyfill
 * library; nothing of the host is behind them). They load together on the first read of any, so
 * an isolate whose scripts never touch them pays only for parsing (the bootstrap's V8 code cache
 * makes that small). A script may still assign its own.
 *
 * `TextEncoder`/`TextDecoder`, timers, `fetch` and the rest of the host stay out (see DESIGN.md:
 * a script reaches nothing but its request).
 */
declare const require: (id: string) => unknown;

const NAMES = ['URL', 'URLSearchParams', 'atob', 'btoa'] as const;
/** Names still behind their getter (a script's own assignment takes one out). */
const lazy = new Set<string>(NAMES);

function settle(name: string, value: unknown): void {
  Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
}

/**
 * Loads all four at once, the first time any is read. core-js looks for native ones while it
 * loads (its URL checks for a global URL), so during the load every name reads as absent, never as
 * one of these getters.
 */
function loadAll(): void {
  const mine = [...lazy];
  lazy.clear();
  for (const n of mine) settle(n, undefined);
  const loaded: Record<(typeof NAMES)[number], unknown> = {
    URL: require('core-js-pure/actual/url'),
    URLSearchParams: require('core-js-pure/actual/url-search-params'),
    atob: require('core-js-pure/actual/atob'),
    btoa: require('core-js-pure/actual/btoa'),
  };
  for (const n of mine) settle(n, loaded[n as (typeof NAMES)[number]]);
}

export function installWebGlobals(): void {
  for (const name of NAMES) {
    Object.defineProperty(globalThis, name, {
      configurable: true,
      enumerable: false,
      get() {
        loadAll();
        return (globalThis as unknown as Record<string, unknown>)[name];
      },
      // A script's own assignment replaces it, as for a plain global.
      set(value: unknown) {
        lazy.delete(name);
        settle(name, value);
      },
    });
  }
}
