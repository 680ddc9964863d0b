/**
 * A generation: everything one loaded config implies (routes, upstream pools, compiled tenant
 * scripts), immutable once built. A request pins the generation that is current when it arrives
 * (`acquire`) and finishes on it (`release`); a retired generation is disposed when its last
 * request ends. Start, reload and `check` all build generations the same way.
 */
import type { Logger } from 'pino';
import { ConfigError, locate, type LoadedConfig } from '../config/load.ts';
import { tlsFileProblems } from '../config/tls-files.ts';
import { accessLogFileProblems } from '../config/access-log-file.ts';
import { PHASE_SCRIPT_KEYS, STREAM_SCRIPT_KEYS, type Config } from '../config/schema.ts';
import { Router } from '../core/router.ts';
import { Upstream } from '../upstream/upstream.ts';
import type { ScriptHost } from '../phases/contract.ts';
import { CertificateTable } from '../core/tls-certificates.ts';

/**
 * Ids count up per process from `SCRIPTGATE_GENERATION` (set by a cluster primary for the workers
 * it forks, and by an upgrade for its successor), else 1; a cluster primary also names the id of
 * each reload (`useGenerationId`), so every worker of a cluster reports the same number.
 */
export const GENERATION_ENV = 'SCRIPTGATE_GENERATION';
let nextId = Number(process.env[GENERATION_ENV]) || 1;

/** The next generation built gets `id` (a cluster primary's number for a reload); ids never go back. */
export function useGenerationId(id: number): void {
  if (Number.isInteger(id) && id >= nextId) nextId = id;
}

export class Generation {
  readonly id: number;
  readonly loadedAt = new Date();
  readonly config: Config;
  readonly file: string;
  readonly router: Router;
  readonly upstreams: ReadonlyMap<string, Upstream>;
  readonly scripts: ScriptHost | undefined;
  /** Per listener (config order): its TLS certificates, read from disk when the generation is built. */
  readonly certificates: ReadonlyArray<CertificateTable | undefined>;
  /** Per stream (config.streams order): its TLS certificates, when it terminates TLS. */
  readonly streamCertificates: ReadonlyArray<CertificateTable | undefined>;
  readonly logger: Logger;
  #active = 0;
  #retired = false;
  #disposed = false;

  constructor(loaded: LoadedConfig, scripts: ScriptHost | undefined, logger: Logger, previous?: Generation) {
    this.id = nextId++;
    this.config = loaded.config;
    this.file = loaded.file;
    this.router = new Router(loaded.config.routes);
    try {
      this.certificates = loaded.config.listen.map((l) => (l.tls ? new CertificateTable(l.tls) : undefined));
      this.streamCertificates = loaded.config.streams.map((s) => (s.tls ? new CertificateTable(s.tls) : undefined));
    } catch (err) {
      scripts?.dispose(); // a certificate that does not load fails the generation before it owns anything else
      throw err;
    }
    this.upstreams = new Map(Object.entries(loaded.config.upstreams).map(([name, cfg]) => [name, new Upstream(name, cfg, logger, { previous: previous?.upstreams.get(name) })]));
    this.scripts = scripts;
    this.logger = logger;
  }

  /** Requests currently running on this generation. */
  get active(): number {
    return this.#active;
  }

  /** A request starts on this generation. */
  acquire(): void {
    this.#active++;
  }

  /** A request that acquired this generation has ended (response done or client gone). */
  release(): void {
    if (--this.#active === 0 && this.#retired) this.#dispose();
  }

  /** No new request will pick this generation; dispose it once the running ones end. */
  retire(): void {
    this.#retired = true;
    if (this.#active === 0) this.#dispose();
  }

  #dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const u of this.upstreams.values()) void u.close();
    this.scripts?.dispose();
    this.logger.debug({ generation: this.id }, 'generation disposed');
  }
}

/** True when any route names a phase script (so isolated-vm and esbuild are needed at all). */
export function usesScripts(config: Config): boolean {
  return config.routes.some((r) => PHASE_SCRIPT_KEYS.some((k) => r[k] !== undefined)) || config.streams.some((s) => STREAM_SCRIPT_KEYS.some((k) => s[k] !== undefined));
}

/**
 * Builds a generation from a loaded config: compiles the scripts (throws ConfigError with
 * `file:line: message` problems when one does not compile) and creates the upstream pools.
 */
export async function buildGeneration(loaded: LoadedConfig, logger: Logger, previous?: Generation): Promise<Generation> {
  // Every TLS file named (certificates, keys, CAs) must read and parse: `file:line:` problems, not a bare ENOENT or 502s later.
  // And the access-log file must open: lines lost without a word otherwise.
  const tls = locate(loaded, [...tlsFileProblems(loaded.config), ...accessLogFileProblems(loaded.config, loaded.file)]);
  if (tls.length) throw new ConfigError(tls);
  let scripts: ScriptHost | undefined;
  if (usesScripts(loaded.config)) {
    // Loaded on demand: a config without scripts never starts isolated-vm or esbuild.
    const { createScriptHost } = await import('../phases/script-host.ts');
    scripts = await createScriptHost(loaded, logger);
  }
  const gen = new Generation(loaded, scripts, logger, previous);
  // Named upstream targets are looked up before the generation serves (failures are logged, not fatal).
  await Promise.all([...gen.upstreams.values()].map((u) => u.ready));
  return gen;
}

/**
 * Compiles a config's scripts without building a generation (no isolates, no pools): a cluster's
 * primary runs it before starting or reloading its workers, so each tenant is compiled once per
 * machine and the workers take the bundles from the disk cache. Returns `file:line: message` problems.
 */
export async function precompileScripts(loaded: LoadedConfig, logger: Logger): Promise<string[]> {
  if (!usesScripts(loaded.config)) return [];
  const { compileScripts } = await import('../phases/script-host.ts');
  return (await compileScripts(loaded, logger)).problems;
}
