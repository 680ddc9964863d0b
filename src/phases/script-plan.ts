/**
 * Works out, from a loaded config, which tenants need a bundle and which script files each route
 * uses. Runs once per generation build, before anything is compiled. Default: a script path is
 * relative to its tenant's `scripts` folder (the implicit `default` tenant's folder is the
 * config's). Returns the plan plus `file:line: message` problems for scripts that are missing or
 * lie outside the folder, with the line of the offending key in the config file.
 */
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { isNode, LineCounter, parseDocument } from 'yaml';
import { formatPath, type LoadedConfig } from '../config/load.ts';
import { PHASE_SCRIPT_KEYS, STREAM_SCRIPT_KEYS } from '../config/schema.ts';
import { displayPath } from '../compile/display-path.ts';
import { isInside } from '../compile/display-path.ts';
import { scriptKey } from '../compile/compile-tenant.ts';

export interface TenantPlan {
  name: string;
  scriptsDir: string;
  memoryMb: number;
  cpuMs: number;
  /** cpu_budget_ms_per_s: enforced in each worker process on its own. */
  cpuBudgetMsPerS: number;
  /** log_bytes_per_s (0 = no limit), per worker process. */
  logBytesPerS: number;
  /** Distinct script keys (relative to scriptsDir). */
  scripts: Set<string>;
  /** Route index -> script key per phase (null where none). Stream i of config.streams has index routes.length + i. */
  routes: Map<number, Array<string | null>>;
  /** The tenant's `env` (ctx.env), resolved. */
  env: Record<string, string>;
}

export interface ScriptPlan {
  tenants: Map<string, TenantPlan>;
  problems: string[];
}

/** `file:line` of `config.routes[i][key]` in the config file; `file:0` when it cannot be read. */
function configLocation(loaded: LoadedConfig, p: Array<string | number>): string {
  const shown = displayPath(loaded.file);
  try {
    const lines = new LineCounter();
    const doc = parseDocument(readFileSync(loaded.file, 'utf8'), { lineCounter: lines });
    const node = doc.getIn(p, true);
    if (isNode(node) && node.range) return `${shown}:${lines.linePos(node.range[0]).line}`;
  } catch {
    /* fall through */
  }
  return `${shown}:0`;
}

export async function planScripts(loaded: LoadedConfig): Promise<ScriptPlan> {
  const { config } = loaded;
  const tenants = new Map<string, TenantPlan>();
  const problems: string[] = [];
  const checks: Array<Promise<void>> = [];
  // Streams name only some phases (STREAM_SCRIPT_KEYS); they are planned like routes, after them.
  const owners: Array<{ section: 'routes' | 'streams'; at: number; tenant: string; keys: Partial<Record<(typeof PHASE_SCRIPT_KEYS)[number], string>> }> = [
    ...config.routes.map((r, at) => ({ section: 'routes' as const, at, tenant: r.tenant, keys: r })),
    ...config.streams.map((s, at) => ({ section: 'streams' as const, at, tenant: s.tenant, keys: Object.fromEntries(STREAM_SCRIPT_KEYS.map((k) => [k, s[k]])) })),
  ];
  owners.forEach((owner, i) => {
    const route = { tenant: owner.tenant, ...owner.keys };
    if (!PHASE_SCRIPT_KEYS.some((k) => route[k] !== undefined)) return;
    const t = config.tenants[route.tenant];
    if (!t) return; // crossCheck already reported it
    let plan = tenants.get(route.tenant);
    if (!plan) {
      plan = { name: route.tenant, scriptsDir: t.scripts, memoryMb: t.memory_mb, cpuMs: t.cpu_ms, cpuBudgetMsPerS: t.cpu_budget_ms_per_s, logBytesPerS: t.log_bytes_per_s, scripts: new Set(), routes: new Map(), env: t.env };
      tenants.set(route.tenant, plan);
    }
    const keys: Array<string | null> = [];
    for (const k of PHASE_SCRIPT_KEYS) {
      const rel = route[k];
      if (rel === undefined) {
        keys.push(null);
        continue;
      }
      const file = path.resolve(plan.scriptsDir, rel);
      const where = (): string => `${configLocation(loaded, [owner.section, owner.at, k])}: ${formatPath([owner.section, owner.at, k])}`;
      if (!isInside(plan.scriptsDir, file) || file === plan.scriptsDir) {
        problems.push(`${where()}: script ${JSON.stringify(rel)} is outside tenant ${JSON.stringify(route.tenant)}'s scripts folder ${displayPath(plan.scriptsDir)}`);
        keys.push(null);
        continue;
      }
      const key = scriptKey(plan.scriptsDir, rel);
      keys.push(key);
      plan.scripts.add(key);
      checks.push(
        stat(file).then(
          (s) => {
            if (!s.isFile()) problems.push(`${where()}: script ${displayPath(file)} is not a file`);
          },
          () => {
            problems.push(`${where()}: script not found: ${displayPath(file)}`);
            // not bundled, so esbuild does not report it a second time
            plan.scripts.delete(key);
          },
        ),
      );
    }
    plan.routes.set(i, keys);
  });
  await Promise.all(checks);
  return { tenants, problems };
}
