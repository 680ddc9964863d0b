/**
 * Script errors grouped by script and line, for `GET /status/errors`. The exchange (and the log
 * phase) call `reportScriptError()` when a phase script fails; that costs nothing on requests that
 * do not fail. Kept per process: the last `RECENT` errors (time, route, tenant, code, message,
 * source-mapped stack) and a count per `script:line`. In a cluster the primary asks each worker
 * for its `errorReport()` and merges them with `mergeErrorReports()`.
 *
 * The group key comes from the error's message, which starts with the script's own
 * `file:line:column` (a throw) or `file` (a timeout or memory limit: line 0).
 */

/** Recent errors kept per process. */
export const RECENT = 100;
/** Groups kept per process (the least recently seen one goes first). */
const MAX_GROUPS = 500;

export interface ScriptErrorEntry {
  time: string;
  route: string;
  tenant: string;
  code: string;
  script: string;
  line: number;
  message: string;
  stack?: string;
  reqId?: string;
}

export interface ErrorGroup {
  script: string;
  line: number;
  tenant: string;
  count: number;
  codes: Record<string, number>;
  firstSeen: string;
  lastSeen: string;
  lastMessage: string;
}

export interface ErrorReport {
  total: number;
  groups: ErrorGroup[];
  recent: ScriptErrorEntry[];
}

const WHERE = /^(.+?):(\d+):(\d+): /;

/** `{script, line}` of a script error message (line 0 when the message names only the file). */
export function scriptLocation(message: string): { script: string; line: number } {
  const m = WHERE.exec(message);
  if (m) return { script: m[1]!, line: Number(m[2]) };
  const colon = message.indexOf(': ');
  return { script: colon > 0 ? message.slice(0, colon) : 'unknown', line: 0 };
}

let total = 0;
const recent: ScriptErrorEntry[] = [];
const groups = new Map<string, ErrorGroup>();

/** Records one failed script call. `err` is the ProxyError (its cause carries the mapped stack). */
export function reportScriptError(err: { code?: string; message?: string; cause?: unknown }, where: { route?: string; tenant?: string; reqId?: string }): void {
  const message = err.message ?? String(err);
  const { script, line } = scriptLocation(message);
  const time = new Date().toISOString();
  const code = err.code ?? 'PRX_ERR_SCRIPT';
  const tenant = where.tenant ?? 'default';
  const stack = (err.cause as { stack?: unknown } | undefined)?.stack;
  total++;
  recent.push({ time, route: where.route ?? '', tenant, code, script, line, message, ...(typeof stack === 'string' ? { stack } : {}), ...(where.reqId ? { reqId: where.reqId } : {}) });
  if (recent.length > RECENT) recent.shift();
  const key = `${tenant}\0${script}:${line}`;
  let g = groups.get(key);
  if (g) groups.delete(key); // re-inserted below: the Map's order is least recently seen first
  else {
    g = { script, line, tenant, count: 0, codes: {}, firstSeen: time, lastSeen: time, lastMessage: message };
    if (groups.size >= MAX_GROUPS) groups.delete(groups.keys().next().value!);
  }
  g.count++;
  g.codes[code] = (g.codes[code] ?? 0) + 1;
  g.lastSeen = time;
  g.lastMessage = message;
  groups.set(key, g);
}

/** This process's report: groups by count (highest first), recent errors newest first. */
export function errorReport(): ErrorReport {
  return { total, groups: sortGroups([...groups.values()]), recent: recent.slice().reverse() };
}

function sortGroups(list: ErrorGroup[]): ErrorGroup[] {
  return list.sort((a, b) => b.count - a.count || (a.lastSeen < b.lastSeen ? 1 : -1));
}

/** Merges the reports of several workers: counts summed per group, recent errors interleaved by time. */
export function mergeErrorReports(reports: readonly ErrorReport[]): ErrorReport {
  const merged = new Map<string, ErrorGroup>();
  let sum = 0;
  for (const r of reports) {
    sum += r.total;
    for (const g of r.groups) {
      const key = `${g.tenant}\0${g.script}:${g.line}`;
      const m = merged.get(key);
      if (!m) {
        merged.set(key, { ...g, codes: { ...g.codes } });
        continue;
      }
      m.count += g.count;
      for (const [c, n] of Object.entries(g.codes)) m.codes[c] = (m.codes[c] ?? 0) + n;
      if (g.firstSeen < m.firstSeen) m.firstSeen = g.firstSeen;
      if (g.lastSeen > m.lastSeen) {
        m.lastSeen = g.lastSeen;
        m.lastMessage = g.lastMessage;
      }
    }
  }
  const all = reports.flatMap((r) => r.recent).sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0));
  return { total: sum, groups: sortGroups([...merged.values()]), recent: all.slice(0, RECENT) };
}

/** Forgets everything (tests). */
export function resetErrorReport(): void {
  total = 0;
  recent.length = 0;
  groups.clear();
}
