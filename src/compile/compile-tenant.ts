/**
 * Bundles all phase scripts of one tenant into one script for its isolate. Runs at start, on
 * `check` and on every reload, once per tenant that any route's `*_by_script` key uses, on
 * esbuild's async API (the work happens in esbuild's own process, off the event loop).
 *
 * The bundle is an IIFE that sets the global `__sgTenant = { scripts: { "<key>": fn, … } }`, where
 * `<key>` is the script's path relative to the tenant's scripts folder (forward slashes) and `fn`
 * its default export. TypeScript and modern JS are accepted; relative imports inside the folder
 * are bundled; everything else is rejected by `importGuard`. The source map is kept (external,
 * without sources content) so runtime errors map back to the script's own file:line:column.
 *
 * Returns `{ ok: true, bundle }`, or `{ ok: false, problems }` with one `file:line: message` line
 * per esbuild error (every error of the tenant, not only the first).
 *
 * Reloads: the last bundle of each (tenant, folder, scripts) is kept with the SHA-1 of every file
 * esbuild read for it; when none of them changed, the same (immutable) bundle object is returned
 * without running esbuild, so changing one tenant's scripts recompiles that tenant only. Built
 * bundles are also kept on disk (bundle-disk-cache.ts), so a cluster's workers take the bundle
 * their primary built instead of compiling it again.
 *
 * @example
 *   const r = await compileTenant({ tenant: 'acme', scriptsDir: '/srv/acme', scripts: ['auth.ts'] });
 */
import { noteCompiledFolders } from './compiled-folders.ts';
import { createHash } from 'node:crypto';
import { readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import * as esbuild from 'esbuild';
import type { SourceMapPayload } from 'node:module';
import { displayPath } from './display-path.ts';
import { importGuard } from './import-guard.ts';
import { readDiskEntry, writeDiskEntry } from './bundle-disk-cache.ts';

/** Global the tenant bundle assigns; read once by the trusted bootstrap at install. */
export const TENANT_GLOBAL = '__sgTenant';
/** File name the bundle is compiled under inside the isolate; stack frames name it. */
export const TENANT_FILENAME = 'scriptgate-tenant.js';

export interface CompileTenantOptions {
  tenant: string;
  /** Absolute folder of the tenant's scripts. */
  scriptsDir: string;
  /** Script paths relative to `scriptsDir` (as written in the config). */
  scripts: readonly string[];
}

export interface TenantBundle {
  tenant: string;
  scriptsDir: string;
  /** The IIFE source run inside the isolate. */
  code: string;
  /** esbuild's source map for `code`; `sources` are relative to `scriptsDir`. */
  map: SourceMapPayload;
  /** Keys of `__sgTenant.scripts`, one per distinct script file. */
  keys: string[];
  /** esbuild warnings as `file:line: message`. */
  warnings: string[];
  /**
   * Keys whose code (the script and every file it imports) mentions `shared`, i.e. may call
   * `ctx.shared(...)`. A conservative text test: a false positive only costs log batching
   * (see RouteScriptsImpl.flushLogsFirst). When absent, every key counts as one.
   */
  sharedUsers?: string[];
}

export type CompileResult = { ok: true; bundle: TenantBundle } | { ok: false; problems: string[] };

/** The key a script is known by inside its tenant's bundle: its path relative to the folder, with `/`. */
export function scriptKey(scriptsDir: string, script: string): string {
  return path.relative(scriptsDir, path.resolve(scriptsDir, script)).split(path.sep).join('/');
}

function entrySource(keys: readonly string[]): string {
  const lines = keys.map((k, i) => `import * as m${i} from ${JSON.stringify(`./${k}`)};`);
  const table = keys.map((k, i) => `  ${JSON.stringify(k)}: m${i}.default,`).join('\n');
  return `${lines.join('\n')}\nexport const scripts = {\n${table}\n};\n`;
}

function formatMessage(scriptsDir: string, m: esbuild.Message): string {
  const loc = m.location;
  if (!loc) return `${displayPath(scriptsDir)}:0: ${m.text}`;
  const file = loc.file === '<entry>' ? scriptsDir : path.resolve(scriptsDir, loc.file.replace(/^file:/, ''));
  return `${displayPath(file)}:${loc.line}: ${m.text}`;
}

/** Bumped when TenantBundle gains a field, so bundles cached on disk by older versions are rebuilt. */
const BUNDLE_FORMAT = 3;

interface CacheEntry {
  bundle: TenantBundle;
  /**
   * Absolute path and SHA-1 of every input file of the bundle (esbuild names them by their real
   * paths), and, marked with a leading `@`, the scripts folder and each entry script as the config
   * names them with the real path each led to: a Kubernetes ConfigMap swaps its `..data` link to a
   * new folder and deletes the old one only later, so the old files' hashes alone still match.
   */
  inputs: Array<[string, string]>;
}

/** The real path `file` leads to now, or undefined. */
async function realOf(file: string): Promise<string | undefined> {
  try {
    return await realpath(file);
  } catch {
    return undefined;
  }
}

const MAX_CACHED = 256;
const cache = new Map<string, CacheEntry>();
/** esbuild runs so far (tests check that unchanged tenants are not rebuilt). */
export const compileCounters = { builds: 0, reused: 0, fromDisk: 0 };

async function sha1(file: string): Promise<string | undefined> {
  try {
    return createHash('sha1').update(await readFile(file)).digest('hex');
  } catch {
    return undefined;
  }
}

async function unchanged(entry: CacheEntry): Promise<boolean> {
  const now = await Promise.all(entry.inputs.map(([file]) => (file.startsWith('@') ? realOf(file.slice(1)) : sha1(file))));
  return now.every((h, i) => h !== undefined && h === entry.inputs[i]![1]);
}

export async function compileTenant(opts: CompileTenantOptions): Promise<CompileResult> {
  const { scriptsDir } = opts;
  const keys = [...new Set(opts.scripts.map((s) => scriptKey(scriptsDir, s)))];
  const cacheKey = JSON.stringify([BUNDLE_FORMAT, opts.tenant, scriptsDir, [...keys].sort()]);
  const remember = (entry: CacheEntry) => {
    noteCompiledFolders(entry.inputs.filter(([f]) => !f.startsWith('@')).map(([f]) => f));
    cache.delete(cacheKey);
    cache.set(cacheKey, entry);
    if (cache.size > MAX_CACHED) cache.delete(cache.keys().next().value!);
  };
  const hit = cache.get(cacheKey);
  if (hit && (await unchanged(hit))) {
    remember(hit);
    compileCounters.reused++;
    return { ok: true, bundle: hit.bundle };
  }
  // Another process of this machine (a cluster's primary) may have built it already.
  const disk = await readDiskEntry<TenantBundle>(cacheKey);
  if (disk && (await unchanged(disk))) {
    remember(disk);
    compileCounters.fromDisk++;
    return { ok: true, bundle: disk.bundle };
  }
  const r = await build(opts, keys);
  if (r.result.ok && r.inputs) {
    const entry = { bundle: r.result.bundle, inputs: r.inputs };
    remember(entry);
    await writeDiskEntry(cacheKey, entry);
  }
  return r.result;
}

/**
 * The keys of `keys` whose module graph (from esbuild's metafile) has a file whose text contains
 * `shared`. A file that cannot be read counts as one that does.
 */
async function sharedUsers(scriptsDir: string, keys: readonly string[], meta: esbuild.Metafile | undefined): Promise<string[]> {
  if (!meta) return [...keys];
  const abs = (f: string) => path.resolve(scriptsDir, f.replace(/^file:/, ''));
  const graph = new Map<string, string[]>();
  for (const [name, input] of Object.entries(meta.inputs)) graph.set(abs(name), input.imports.map((i) => abs(i.path)));
  const mentions = new Map<string, Promise<boolean>>();
  const mentionsShared = (file: string) => {
    let m = mentions.get(file);
    if (!m) mentions.set(file, (m = readFile(file, 'utf8').then((t) => t.includes('shared'), () => true)));
    return m;
  };
  const out: string[] = [];
  for (const key of keys) {
    const seen = new Set<string>();
    const todo = [abs(key)];
    while (todo.length) {
      const f = todo.pop()!;
      if (seen.has(f)) continue;
      seen.add(f);
      todo.push(...(graph.get(f) ?? []));
    }
    const hits = await Promise.all([...seen].map(mentionsShared));
    if (hits.some(Boolean)) out.push(key);
  }
  return out;
}

async function build(opts: CompileTenantOptions, keys: string[]): Promise<{ result: CompileResult; inputs?: Array<[string, string]> }> {
  const { scriptsDir } = opts;
  compileCounters.builds++;
  let realDir = scriptsDir;
  try {
    realDir = await realpath(scriptsDir);
  } catch {
    return { result: { ok: false, problems: [`${displayPath(scriptsDir)}:0: scripts folder of tenant ${JSON.stringify(opts.tenant)} does not exist`] } };
  }
  /** SHA-1 of each file as esbuild compiled it (read by the import guard). */
  const compiled = new Map<string, string>();
  try {
    const result = await esbuild.build({
      stdin: { contents: entrySource(keys), resolveDir: scriptsDir, sourcefile: '<entry>', loader: 'js' },
      absWorkingDir: scriptsDir,
      outfile: path.join(scriptsDir, TENANT_FILENAME),
      bundle: true,
      write: false,
      format: 'iife',
      globalName: TENANT_GLOBAL,
      platform: 'neutral',
      target: 'es2022',
      sourcemap: 'external',
      sourcesContent: false,
      charset: 'utf8',
      legalComments: 'none',
      logLevel: 'silent',
      tsconfigRaw: '{}',
      plugins: [importGuard(scriptsDir, realDir, (file, hash) => compiled.set(file, hash))],
      metafile: true,
    });
    const js = result.outputFiles.find((f) => f.path.endsWith('.js'));
    const map = result.outputFiles.find((f) => f.path.endsWith('.map'));
    if (!js || !map) return { result: { ok: false, problems: [`${displayPath(scriptsDir)}:0: esbuild produced no output`] } };
    // Drop the trailing sourceMappingURL comment: the map is kept on the host.
    const code = js.text.replace(/\n\/\/# sourceMappingURL=.*\n?$/, '\n');
    const files = Object.keys(result.metafile?.inputs ?? {})
      .filter((f) => f !== '<entry>')
      .map((f) => path.resolve(scriptsDir, f.replace(/^file:/, '')));
    // The hash of what was compiled (a file rewritten during the build then differs from it, and
    // the next reload rebuilds); a file esbuild read itself is hashed now.
    const hashes = await Promise.all(files.map((f) => compiled.get(f) ?? sha1(f)));
    const named = [scriptsDir, ...keys.map((k) => path.resolve(scriptsDir, k))];
    const reals = await Promise.all(named.map(realOf));
    const inputs =
      hashes.every((h) => h !== undefined) && reals.every((r) => r !== undefined)
        ? [...files.map((f, i): [string, string] => [f, hashes[i]!]), ...named.map((f, i): [string, string] => [`@${f}`, reals[i]!])]
        : undefined;
    const bundle: TenantBundle = {
      tenant: opts.tenant,
      scriptsDir,
      code,
      map: JSON.parse(map.text) as SourceMapPayload,
      keys,
      warnings: result.warnings.map((w) => formatMessage(scriptsDir, w)),
      sharedUsers: await sharedUsers(scriptsDir, keys, result.metafile),
    };
    return { result: { ok: true, bundle }, inputs };
  } catch (err) {
    const errors = (err as { errors?: esbuild.Message[] }).errors;
    if (Array.isArray(errors) && errors.length > 0) return { result: { ok: false, problems: errors.map((m) => formatMessage(scriptsDir, m)) } };
    return { result: { ok: false, problems: [`${displayPath(scriptsDir)}:0: ${(err as Error).message}`] } };
  }
}
