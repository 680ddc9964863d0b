/**
 * Watches the config file and the folders of the scripts it names (not recursively: a big tree such
 * as node_modules is never walked), and calls `onChange` once per burst of changes (debounced). Started by the process that owns reloads (the single process or the
 * cluster primary) when `reload.watch` is on (the default). Returns a function that stops watching.
 * Editors that replace a file (write + rename) are covered because the folder, not the file, is
 * watched, and so is a ConfigMap volume's update (its `..data` link renamed over).
 */
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { PHASE_SCRIPT_KEYS, type Config } from '../config/schema.ts';
import { compiledFolders } from '../compile/compiled-folders.ts';

export function watchForChanges(file: string, folders: string[], debounceMs: number, onChange: (what: string) => void, logger: Logger): () => void {
  const watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | undefined;
  let first = '';
  const fire = (what: string) => {
    first ||= what;
    clearTimeout(timer);
    timer = setTimeout(() => {
      const w = first;
      first = '';
      onChange(w);
    }, debounceMs);
  };
  const configDir = path.dirname(file);
  const base = path.basename(file);
  const add = (dir: string, filter: (name: string) => boolean) => {
    try {
      const w = watch(dir, { persistent: false }, (_event, name) => {
        const n = name?.toString() ?? '';
        if (filter(n)) fire(path.join(dir, n));
      });
      w.on('error', (err) => logger.warn({ dir, err: err.message }, 'watch failed'));
      watchers.push(w);
    } catch (err) {
      logger.warn({ dir, err: (err as Error).message }, 'cannot watch folder; reload with SIGHUP or POST /reload');
    }
  };
  // `..data` is the link a Kubernetes ConfigMap volume swaps to publish new files.
  const isScript = (n: string) => /\.(m?[jt]sx?|json)$/.test(n) || n === '..data';
  add(configDir, (n) => n === base || (folders.includes(configDir) && isScript(n)));
  for (const dir of new Set(folders)) if (dir !== configDir) add(dir, isScript);
  return () => {
    clearTimeout(timer);
    for (const w of watchers) w.close();
  };
}

/**
 * watchForChanges for a config that can change: watches while `reload.watch` is on (the default).
 * `aim(config)`, called after each successful reload, follows that config: its script folders (a
 * reload may add a tenant or a script in a new folder) and the folders of the files its bundles
 * imported, `reload.watch` turned off or on, and `reload.debounce`; it re-arms every watch (a
 * replaced folder is a new one). Returns the handle; `stop()` ends watching.
 */
export function watchConfigFolders(file: string, config: Config, onChange: (what: string) => void, logger: Logger): { aim(config: Config): void; stop(): void } {
  let key = '';
  let stop = (): void => undefined;
  const aim = (next: Config): void => {
    // The named scripts' folders and those of every file the bundles read (imported helpers).
    const folders = [...new Set([...scriptFolders(next), ...compiledFolders()])];
    const nextKey = next.reload.watch ? `${next.reload.debounce}\n${folders.sort().join('\n')}` : '';
    // Watches are made anew after every reload, also for the same folders: a folder replaced by a
    // deploy (rm -rf t; mv t.new t) is a new folder that the old watch no longer sees.
    if (nextKey === '' && key === '') return;
    stop();
    key = nextKey;
    stop = next.reload.watch ? watchForChanges(file, folders, next.reload.debounce, onChange, logger) : () => undefined;
  };
  aim(config);
  return { aim, stop: () => stop() };
}

/** Folders to watch for a config: each tenant's scripts folder and the folder of every named script. */
export function scriptFolders(config: Config): string[] {
  const dirs = new Set<string>();
  for (const r of config.routes) {
    const tenant = config.tenants[r.tenant];
    if (!tenant) continue;
    for (const key of PHASE_SCRIPT_KEYS) {
      const f = r[key];
      if (f) {
        dirs.add(tenant.scripts);
        dirs.add(path.dirname(path.resolve(tenant.scripts, f)));
      }
    }
  }
  return [...dirs];
}
