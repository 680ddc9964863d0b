/**
 * Runs inside the isolate, inside the timed call: turns whatever a script threw into a small
 * `WireError` (kind, phase, message, stack), truncated to the wire caps. Default kind 'S' (the
 * script threw); 'F' for a forbidden call, 'R' for a bad result. Reading a hostile error (getters
 * on `message`/`stack`, a huge string) happens here, bounded by the call's timeout.
 */
import { WIRE_LIMITS, type WireError } from '../wire.ts';
import { PhaseForbiddenError, ScriptResultError } from './phase-guard.ts';

function cap(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

export function describeError(e: unknown, phase: number): WireError {
  let k: WireError['k'] = 'S';
  let m = '';
  let st = '';
  try {
    if (e instanceof PhaseForbiddenError) k = 'F';
    else if (e instanceof ScriptResultError) k = 'R';
    if (e instanceof Error) {
      const name = String(e.name);
      const message = String(e.message);
      m = k === 'S' ? `${name}: ${cap(message, WIRE_LIMITS.errorMessage)}` : message;
      const stack = e.stack;
      st = typeof stack === 'string' ? stack : '';
    } else {
      m = `uncaught ${e === null ? 'null' : typeof e}: ${String(e)}`;
    }
  } catch {
    m = 'uncaught value that cannot be described';
  }
  return { k, p: phase, m: cap(m, WIRE_LIMITS.errorMessage), st: cap(st, WIRE_LIMITS.errorStack) };
}
