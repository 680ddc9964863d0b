/**
 * Runs inside the isolate. Knows which phase is running and enforces what each phase may do: every
 * runtime-api member calls `allow(mask, what)` first, mirroring the per-phase context types.
 * Default: no phase (-1) between calls, so an API used from a stray microtask or a stashed ctx
 * after its phase returned throws too. Throws `PhaseForbiddenError` (reported to the host as
 * PRX_ERR_PHASE_FORBIDDEN); returns nothing.
 */
import { PHASE_NAMES } from '../wire.ts';

export const REWRITE = 1;
export const ACCESS = 2;
export const HEADER_FILTER = 4;
export const BODY_FILTER = 8;
export const LOG = 16;
export const BALANCER = 32;
export const ANY_PHASE = 63;
export const REQUEST_PHASES = REWRITE | ACCESS;
export const RESPONSE_PHASES = HEADER_FILTER | BODY_FILTER | LOG;

let current = -1;

export function currentPhase(): number {
  return current;
}

export function setPhase(phase: number): void {
  current = phase;
  refused = undefined;
}

/**
 * The first forbidden call of the running phase: the phase fails with it even when the script
 * caught the throw (the docs' promise: a call a phase may not make fails the request).
 */
let refused: PhaseForbiddenError | undefined;

/** The forbidden call the phase made, if any (once: it is cleared). */
export function takeRefused(): PhaseForbiddenError | undefined {
  const r = refused;
  refused = undefined;
  return r;
}

export class PhaseForbiddenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PhaseForbiddenError';
  }
}

/** A phase returned something its contract does not allow (wrong type, too large, a Promise). */
export class ScriptResultError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScriptResultError';
  }
}

function names(mask: number): string {
  const out: string[] = [];
  for (let i = 0; i < PHASE_NAMES.length; i++) if (mask & (1 << i)) out.push(PHASE_NAMES[i]!);
  return out.join(', ');
}

/** Throws unless the running phase is in `mask`. `what` reads like `ctx.exit()`. */
export function allow(mask: number, what: string): void {
  if (current >= 0 && mask & (1 << current)) return;
  const where = current < 0 ? 'outside a running phase' : `in ${PHASE_NAMES[current]}`;
  const err = new PhaseForbiddenError(`${what} is not allowed ${where} (allowed in ${names(mask)})`);
  if (current >= 0) refused ??= err;
  throw err;
}
