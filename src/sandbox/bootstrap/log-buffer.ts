/**
 * Runs inside the isolate: collects `ctx.log.*` calls of the running crossing so they go back to the
 * host in that crossing's result (no host callback per log call). Default: at most
 * `logEntriesPerCall` entries and `logCharsPerCall` characters of messages and fields (one extra
 * entry says how many were dropped); messages and fields are truncated to their caps; fields that
 * do not serialise become an `unserializable` note.
 * `takeLogs()` returns the entries and starts a new buffer.
 */
import { WIRE_LIMITS, type WireLog } from '../wire.ts';
import { currentPhase } from './phase-guard.ts';

let entries: WireLog[] = [];
let dropped = 0;
let chars = 0;

function push(level: number, msg: unknown, fields: unknown): void {
  if (currentPhase() < 0) return;
  if (entries.length >= WIRE_LIMITS.logEntriesPerCall) {
    dropped++;
    return;
  }
  let m = typeof msg === 'string' ? msg : String(msg);
  if (m.length > WIRE_LIMITS.logMessage) m = `${m.slice(0, WIRE_LIMITS.logMessage)}…`;
  let f = '';
  if (fields !== undefined && fields !== null) {
    try {
      f = typeof fields === 'object' ? (JSON.stringify(fields) ?? '') : '';
    } catch {
      f = '{"unserializable":true}';
    }
    if (f.length > WIRE_LIMITS.logFields || f[0] !== '{') f = f.length ? '{"truncated":true}' : '';
  }
  if (chars + m.length + f.length > WIRE_LIMITS.logCharsPerCall) {
    dropped++;
    return;
  }
  chars += m.length + f.length;
  entries.push([level, m, f]);
}

/** The `ctx.log` object (one for all requests; entries belong to the running crossing). */
export const scriptLog = Object.freeze({
  debug(msg: string, fields?: Record<string, unknown>): void {
    push(0, msg, fields);
  },
  info(msg: string, fields?: Record<string, unknown>): void {
    push(1, msg, fields);
  },
  warn(msg: string, fields?: Record<string, unknown>): void {
    push(2, msg, fields);
  },
  error(msg: string, fields?: Record<string, unknown>): void {
    push(3, msg, fields);
  },
});

/** One console argument as text: strings as they are, errors by their stack, the rest as JSON (else String). */
function consoleText(v: unknown): string {
  if (typeof v === 'string') return v;
  try {
    if (v instanceof Error) return v.stack ?? `${v.name}: ${v.message}`;
    if (typeof v === 'object' && v !== null) return JSON.stringify(v) ?? String(v);
    return String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}

function consoleLine(args: unknown[]): string {
  let out = '';
  for (let i = 0; i < args.length && out.length <= WIRE_LIMITS.logMessage; i++) out += (i ? ' ' : '') + consoleText(args[i]);
  return out;
}

/**
 * The isolate's `console` (isolated-vm's own one discards everything): `console.log/info` go to the
 * proxy's log at info, `debug` at debug, `warn` at warn and `error`/`trace` at error, with the
 * arguments joined by spaces (objects as JSON), like ctx.log and, in nginx's njs, ngx.log.
 * Outside a phase (a bundle's top level) they are dropped, as ctx.log is.
 */
export const scriptConsole = Object.freeze({
  log: (...args: unknown[]): void => push(1, consoleLine(args), undefined),
  info: (...args: unknown[]): void => push(1, consoleLine(args), undefined),
  debug: (...args: unknown[]): void => push(0, consoleLine(args), undefined),
  warn: (...args: unknown[]): void => push(2, consoleLine(args), undefined),
  error: (...args: unknown[]): void => push(3, consoleLine(args), undefined),
  trace: (...args: unknown[]): void => push(3, consoleLine(args), undefined),
});

export function takeLogs(): WireLog[] | undefined {
  if (entries.length === 0 && dropped === 0) return undefined;
  const out = entries;
  if (dropped) out.push([2, `${dropped} ctx.log calls dropped (limit ${WIRE_LIMITS.logEntriesPerCall} lines and ${WIRE_LIMITS.logCharsPerCall / 1024} KiB per phase call)`, '']);
  clearLogs();
  return out;
}

export function clearLogs(): void {
  entries = [];
  dropped = 0;
  chars = 0;
}
