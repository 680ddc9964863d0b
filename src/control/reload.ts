/**
 * Hot reload of one process: load the config file again, compile its scripts into a new
 * generation off the request path, and swap it in. Requests already running finish on the old
 * generation; a config or script error leaves the running generation serving and is reported as
 * `file:line: message` problems. Triggered by SIGHUP, `POST /reload` on the admin listener, or the
 * cluster primary.
 */
import type { Logger } from 'pino';
import { ConfigError, loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { buildGeneration } from './generation.ts';
import type { ProxyServer } from './proxy-server.ts';

export type ReloadResult =
  | { ok: true; generation: number; loadedAt: string; warnings: string[] }
  | { ok: false; problems: string[]; at: string };

/** Reloads `file` into `server`; never throws. Serialised: a reload asked for during another waits for it. */
export function createReloader(server: ProxyServer, file: string, logger: Logger): () => Promise<ReloadResult> {
  let chain: Promise<unknown> = Promise.resolve();
  return function reload() {
    const run = chain.then(() => reloadOnce(server, file, logger));
    chain = run.catch(() => undefined);
    return run;
  };
}

async function reloadOnce(server: ProxyServer, file: string, logger: Logger): Promise<ReloadResult> {
  try {
    const loaded = await loadConfig(file);
    const warnings: string[] = [];
    // TLS certificates, client_ca, min_version and ciphers apply on reload (listener.ts reads them per
    // connection), and so do limits (ProxyServer.swap).
    const restartOnly = (c: Config) => JSON.stringify(c.listen.map((l) => ({ ...l, limits: undefined, tls: l.tls ? { verify_client: l.tls.verify_client } : undefined })));
    // Compared with what is bound, not with the previous generation: every reload says it until a restart.
    if (restartOnly(loaded.config) !== restartOnly(server.bound)) warnings.push('listen: listener changes take effect on restart; the running listeners are kept');
    // A stream's address (and TLS on/off) is bound at start; its upstream, scripts, timeouts and certificates follow reloads.
    const streamAddresses = (c: Config) => JSON.stringify(c.streams.map((s) => [s.address, s.tls ? s.tls.verify_client : null]));
    if (streamAddresses(loaded.config) !== streamAddresses(server.bound)) warnings.push('streams: address and tls on/off changes take effect on restart; a stream whose address moved refuses connections until then');
    // admin.token follows reloads (admin.ts reads the current one); where admin listens and how many workers run do not.
    if (loaded.config.admin?.address !== server.bound.admin?.address) warnings.push('admin: address changes take effect on restart; the admin listener stays where it is');
    if (loaded.config.workers !== server.bound.workers) warnings.push('workers: a change of the worker count takes effect on restart');
    const gen = await buildGeneration(loaded, logger, server.generation);
    server.swap(gen);
    for (const w of warnings) logger.warn(w);
    logger.info({ generation: gen.id }, 'config reloaded');
    return { ok: true, generation: gen.id, loadedAt: gen.loadedAt.toISOString(), warnings };
  } catch (err) {
    const problems = err instanceof ConfigError ? err.problems : [`${file}: ${(err as Error).message}`];
    logger.error({ problems }, 'reload failed; the running configuration keeps serving');
    return { ok: false, problems, at: new Date().toISOString() };
  }
}
