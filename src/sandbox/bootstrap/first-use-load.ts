/**
 * Runs inside the isolate: the guard around loading a built-in on its first use (core-js's URL,
 * the hashes). A module's top level that a timeout cuts off mid-way leaves it half-initialised
 * for good (esbuild's module cache keeps the partial exports, core-js its half-built internals),
 * and every later use in the isolate would fail. So each load counts itself in and out, and after
 * a timeout the host asks `loadCutOff()`: when a load never finished, it drops the isolate, which
 * is rebuilt clean for the next request (tenant-sandbox.ts).
 */
let unfinished = 0;

/** Runs `load` (a module's first require); a throw or a cut-off leaves it counted as unfinished. */
export function firstUseLoad<T>(load: () => T): T {
  unfinished++;
  const value = load();
  unfinished--;
  return value;
}

/** True when a first-use load was cut off or threw: the isolate's built-ins cannot be trusted. */
export function loadCutOff(): boolean {
  return unfinished > 0;
}
