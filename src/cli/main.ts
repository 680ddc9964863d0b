/**
 * The `scriptgate` command.
 *
 *   scriptgate start [-c FILE]   run the proxy (default config: ./scriptgate.yaml)
 *   scriptgate check [-c FILE]   validate config and compile scripts, like `nginx -t`; exit 0 or 1
 *   scriptgate reload [-c FILE]  POST /reload to the running proxy's admin listener; exit 0 or 1
 *   scriptgate demo              the load-balancer example with its two local origins (npm start)
 *   scriptgate --version | --help
 *
 * Runs under bin/scriptgate.js, which adds the node flags the sandbox needs.
 */
import pino from 'pino';
import cluster from 'node:cluster';
import { VERSION } from '../version.ts';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, locate, type LoadedConfig } from '../config/load.ts';
import { tlsFileProblems } from '../config/tls-files.ts';
import type { ListenerConfig } from '../config/schema.ts';
import { CertificateTable } from '../core/tls-certificates.ts';
import { createLogger, flushLogger } from '../observability/logger.ts';
import { buildGeneration } from '../control/generation.ts';
import { runPrimary, runSingle, workerCount } from '../control/cluster.ts';
import { runDemo } from './demo.ts';

const HELP = `scriptgate — a programmable reverse proxy with sandboxed TypeScript phase scripts

Usage:
  scriptgate start [-c FILE]   run the proxy (default config: scriptgate.yaml)
  scriptgate check [-c FILE]   validate the config and compile its scripts, then exit 0 (ok) or 1
  scriptgate reload [-c FILE]  ask the running proxy (through the config's admin listener) to reload
  scriptgate demo              run the load-balancer demo (two local origins + the proxy on 127.0.0.1:6188)
  scriptgate --version         print the version
  scriptgate --help            print this help

Signals: SIGTERM and SIGQUIT drain in-flight requests (up to shutdown_timeout) then exit; SIGINT
exits at once; SIGHUP reloads; SIGUSR1 reopens access-log files; SIGUSR2 upgrades to the code on
disk without dropping a connection. With workers: N, signal the primary.
Environment: LOG_LEVEL overrides the config's log.level.
`;


/** scriptgate's version (from package.json). */
export function version(): string {
  return VERSION;
}

function fail(message: string, code = 1): never {
  process.stderr.write(message.endsWith('\n') ? message : message + '\n');
  process.exit(code);
}

export async function main(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        version: { type: 'boolean', short: 'v' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    fail(`scriptgate: ${(err as Error).message}\n\n${HELP}`, 2);
  }
  const { values, positionals } = parsed;
  if (values.version) return void process.stdout.write(`scriptgate ${VERSION}\n`);
  const command = positionals[0];
  if (values.help || command === 'help' || command === undefined) {
    process.stdout.write(HELP);
    if (command === undefined && !values.help) process.exitCode = 2;
    return;
  }
  const file = values.config ?? 'scriptgate.yaml';
  switch (command) {
    case 'start':
      return start(file);
    case 'check':
      return check(file);
    case 'reload':
      return reload(file);
    case 'demo':
      return runDemo();
    default:
      fail(`scriptgate: unknown command ${JSON.stringify(command)}\n\n${HELP}`, 2);
  }
}

async function load(file: string) {
  try {
    return await loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) fail(err.problems.join('\n'));
    throw err;
  }
}

/**
 * `scriptgate reload`: asks the running proxy to reload through the admin listener named in the
 * config (with its token). Prints the new generation, or the problems that kept the old one.
 */
async function reload(file: string): Promise<void> {
  const { config } = await load(file);
  if (!config.admin) fail(`scriptgate: ${file} has no admin listener; send SIGHUP to the scriptgate process instead`);
  const headers: Record<string, string> = config.admin.token ? { authorization: `Bearer ${config.admin.token}` } : {};
  let res: Response;
  try {
    res = await fetch(`http://${config.admin.address}/reload`, { method: 'POST', headers });
  } catch (err) {
    fail(`scriptgate: cannot reach the admin listener at ${config.admin.address}: ${(err as Error).cause ?? (err as Error).message}`);
  }
  const body = (await res.json().catch(() => ({}))) as { ok?: boolean; generation?: number; problems?: string[]; warnings?: string[]; error?: string };
  if (res.ok && body.ok) {
    // What the reload could not apply (a listener change waits for a restart) is worth a line each.
    for (const w of body.warnings ?? []) process.stderr.write(`scriptgate: warning: ${w}\n`);
    process.stdout.write(`scriptgate: reloaded; generation ${body.generation}\n`);
    process.exit(0);
  }
  fail(body.problems?.join('\n') ?? `scriptgate: reload refused (${res.status}${body.error ? `: ${body.error}` : ''})`);
}

/** `scriptgate check`: everything a start does except binding sockets. */
async function check(file: string): Promise<void> {
  const { loaded, unset } = await loadForCheck(file);
  const problems = [...unset];
  try {
    createLogger(loaded.config.log.level); // a LOG_LEVEL that start would refuse
  } catch (err) {
    problems.push(`scriptgate: ${(err as Error).message}`);
  }
  // TLS files stop a generation before its scripts compile: checked here, and the scripts compiled without them.
  const tls = locate(loaded, tlsFileProblems(loaded.config));
  problems.push(...tls);
  try {
    // `check` logs nothing (whatever LOG_LEVEL says): its findings are its output.
    const gen = await buildGeneration(tls.length ? { ...loaded, config: withoutTls(loaded.config) } : loaded, pino({ level: 'silent' }));
    gen.retire();
  } catch (err) {
    if (err instanceof ConfigError) {
      problems.push(...err.problems);
      // Script problems stop a generation before its certificates load: check those too.
      if (!tls.length) problems.push(...certificateProblems(loaded));
    } else problems.push(`${file}: ${(err as Error).message}`);
  }
  // A certificate problem can surface from both the generation and certificateProblems: once each.
  if (problems.length) fail([...new Set(problems)].join('\n'));
  process.stdout.write(`scriptgate: configuration file ${file} test is successful\n`);
  process.exit(0);
}

/** `config` with no TLS anywhere: what `check` compiles the scripts with once its TLS files are known to be broken. */
function withoutTls(config: LoadedConfig['config']): LoadedConfig['config'] {
  return {
    ...config,
    listen: config.listen.map((l) => ({ ...l, tls: undefined })),
    streams: config.streams.map((s) => ({ ...s, tls: undefined })),
    upstreams: Object.fromEntries(Object.entries(config.upstreams).map(([n, u]) => [n, { ...u, tls: undefined }])),
  };
}

/** Every TLS certificate set of the config that does not load, as `file: listen[i].tls: message`. */
function certificateProblems(loaded: LoadedConfig): string[] {
  const out: string[] = [];
  const sets: Array<[string, ListenerConfig['tls']]> = [
    ...loaded.config.listen.map((l, i): [string, ListenerConfig['tls']] => [`listen[${i}].tls`, l.tls]),
    ...loaded.config.streams.map((s, i): [string, ListenerConfig['tls']] => [`streams[${i}].tls`, s.tls as ListenerConfig['tls']]),
  ];
  for (const [where, tls] of sets) {
    if (!tls) continue;
    try {
      new CertificateTable(tls);
    } catch (err) {
      out.push(`${loaded.file}: ${where}: ${(err as Error).message}`);
    }
  }
  return out;
}

/**
 * The config for `check`, which reports every problem at once: `{ from_env: VAR }` values whose
 * variable is unset on this machine are problems, but the rest of the config (scripts,
 * certificates) is still checked, with those values empty. Other load problems end it here.
 */
async function loadForCheck(file: string): Promise<{ loaded: LoadedConfig; unset: string[] }> {
  try {
    return { loaded: await loadConfig(file), unset: [] };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const vars = err.problems.map((p) => /: environment variable (\S+) is not set$/.exec(p)?.[1]);
    if (vars.some((v) => v === undefined)) fail(err.problems.join('\n'));
    for (const v of vars) process.env[v!] = '';
    return { loaded: await load(file), unset: err.problems };
  }
}

/** `scriptgate start`: one process, or a cluster primary and its workers. */
export async function start(file: string): Promise<void> {
  const loaded = await load(file);
  const n = workerCount(loaded.config.workers);
  const worker = cluster.isWorker;
  let logger: ReturnType<typeof createLogger>;
  try {
    logger = createLogger(loaded.config.log.level, worker ? { worker: cluster.worker?.id } : {});
  } catch (err) {
    fail(`scriptgate: cannot start: ${(err as Error).message}`);
  }
  try {
    if (n > 1 && cluster.isPrimary) await runPrimary(n, loaded, logger);
    else await runSingle(loaded, logger);
  } catch (err) {
    flushLogger();
    if (err instanceof ConfigError) fail(err.problems.join('\n'));
    fail(`scriptgate: cannot start: ${(err as Error).message}`);
  }
}
