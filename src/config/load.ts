/**
 * Loads a config file (YAML or JSON; JSON is parsed by the YAML parser too, so both get line
 * numbers), validates it against the schema, and reports every problem at once as
 * `file:line: field.path: message`. Runs at start, on `check`, and on every reload; it never
 * touches the running generation.
 *
 * @example
 *   const { config } = await loadConfig('scriptgate.yaml');
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import { configSchema, crossCheck, type Config } from './schema.ts';
import { ProxyError } from '../errors.ts';
import { displayPath } from '../compile/display-path.ts';

export interface LoadedConfig {
  config: Config;
  /** Absolute path of the config file. */
  file: string;
  /** Folder that relative paths in the config resolve against. */
  baseDir: string;
  /** The text it was parsed from (a cluster primary hands it to the workers it starts). */
  text: string;
}

/**
 * Set by a cluster primary in its workers' environment: the file holding the config text the
 * primary validated last, which a worker loads instead of the config file (a worker restarted
 * after a crash must run what its siblings run, not an edit on disk that was never reloaded).
 */
export const CONFIG_SNAPSHOT_ENV = 'SCRIPTGATE_CONFIG_SNAPSHOT';

/** A config that does not load; `problems` holds one `file:line: path: message` line per problem. */
export class ConfigError extends ProxyError {
  readonly problems: string[];
  constructor(problems: string[]) {
    super('PRX_ERR_CONFIG', problems.join('\n'));
    this.problems = problems;
  }
}

/** Renders a zod/yaml path as `routes[2].match.host`. */
export function formatPath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const key of p) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out;
}


/** Line (1-based) of the deepest node along `p` that exists in the document. */
function lineOf(doc: Document, lines: LineCounter, p: readonly PropertyKey[]): number {
  for (let n = p.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(p.slice(0, n) as unknown[], true);
    if (isNode(node) && node.range) return lines.linePos(node.range[0]).line;
  }
  return 1;
}

/** Parses and validates config text; `file` is used for messages and relative paths. */
export function parseConfig(text: string, file: string): LoadedConfig {
  const shown = displayPath(file);
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => `${shown}:${e.linePos?.[0]?.line ?? 1}: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`));
  }
  let raw: unknown;
  try {
    // An alias to no anchor, or one that expands without end (a "billion laughs"), throws here.
    raw = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (err) {
    const alias = /^Unresolved alias.*:\s*([\w.-]+)\s*$/.exec((err as Error).message)?.[1];
    const at = alias ? text.search(new RegExp(`\\*${alias}\\b`)) : -1;
    throw new ConfigError([`${shown}:${at >= 0 ? lines.linePos(at).line : 1}: ${(err as Error).message.split('\n')[0]}`]);
  }
  const result = configSchema.safeParse(raw);
  const found: Array<{ path: PropertyKey[]; linePath: PropertyKey[]; message: string }> = [];
  if (!result.success) {
    for (const issue of result.error.issues) {
      // For an unknown key, point at the key's own line.
      const keys = issue.code === 'unrecognized_keys' ? issue.keys : [];
      found.push({ path: issue.path, linePath: keys.length ? [...issue.path, keys[0]!] : issue.path, message: issue.message });
    }
  }
  for (const [p, message] of crossCheck(raw)) found.push({ path: p, linePath: p, message });
  if (found.length > 0 || !result.success) {
    const problems = found
      .map((f) => ({ line: lineOf(doc, lines, f.linePath), text: `${formatPath(f.path) ? `${formatPath(f.path)}: ` : ''}${f.message}` }))
      .sort((a, b) => a.line - b.line)
      .map((f) => `${shown}:${f.line}: ${f.text}`);
    throw new ConfigError(problems);
  }
  const baseDir = path.dirname(path.resolve(file));
  return { config: resolvePaths(result.data, baseDir), file: path.resolve(file), baseDir, text };
}

/**
 * `file:line: path: message` for problems found after loading (a TLS file that does not read, say),
 * given as [config path, message]: the line is looked up in the text the config was loaded from.
 */
export function locate(loaded: LoadedConfig, found: ReadonlyArray<[Array<string | number>, string]>): string[] {
  if (found.length === 0) return [];
  const lines = new LineCounter();
  const doc = parseDocument(loaded.text, { lineCounter: lines });
  const shown = displayPath(loaded.file);
  return found.map(([p, message]) => `${shown}:${lineOf(doc, lines, p)}: ${formatPath(p)}: ${message}`);
}

/** Reads and parses a config file. Throws ConfigError (with `problems`) when it does not load. */
export async function loadConfig(file: string): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(process.env[CONFIG_SNAPSHOT_ENV] || file, 'utf8');
  } catch (err) {
    throw new ConfigError([`${displayPath(file)}:0: cannot read config: ${(err as Error).message}`]);
  }
  return parseConfig(text, file);
}

/** Makes every path in the config absolute (relative to the config's folder) and adds the implicit `default` tenant. */
function resolvePaths(config: Config, baseDir: string): Config {
  const abs = (p: string) => path.resolve(baseDir, p);
  for (const l of config.listen) {
    for (const c of l.tls?.certificates ?? []) {
      c.cert = abs(c.cert);
      c.key = abs(c.key);
    }
    if (l.tls?.client_ca) l.tls.client_ca = abs(l.tls.client_ca);
  }
  for (const st of config.streams) {
    for (const c of st.tls?.certificates ?? []) {
      c.cert = abs(c.cert);
      c.key = abs(c.key);
    }
    if (st.tls?.client_ca) st.tls.client_ca = abs(st.tls.client_ca);
  }
  for (const u of Object.values(config.upstreams)) {
    if (u.tls?.ca) u.tls.ca = abs(u.tls.ca);
    if (u.tls?.cert) u.tls.cert = abs(u.tls.cert);
    if (u.tls?.key) u.tls.key = abs(u.tls.key);
  }
  for (const t of Object.values(config.tenants)) t.scripts = abs(t.scripts);
  if (!config.tenants.default) config.tenants.default = { memory_mb: 64, cpu_ms: 50, cpu_budget_ms_per_s: 500, log_bytes_per_s: 1024 * 1024, scripts: baseDir, env: {} };
  return config;
}
