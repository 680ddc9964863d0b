/**
 * The access-log file a config names (`log.access_log.file`), opened for appending when the config
 * loads (start, reload, check), as `nginx -t` opens its logs: a folder that cannot be made or a
 * file that cannot be written is a `file:line: log.access_log.file: message` problem then, instead
 * of access lines lost without a word at run time. Creates the folder and the file, as serving would.
 */
import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import type { Config } from './schema.ts';

/** [config path, message] for an access-log file that cannot be opened for appending; none when it can (or none is set). */
export function accessLogFileProblems(config: Config, configFile: string): Array<[Array<string | number>, string]> {
  const file = config.log.access_log_options?.file;
  if (!file) return [];
  const full = path.resolve(path.dirname(configFile), file);
  try {
    makeFolders(path.dirname(full));
    closeSync(openSync(full, 'a'));
    return [];
  } catch (err) {
    return [[['log', 'access_log', 'file'], `cannot open ${full} for appending: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]];
  }
}

/**
 * mkdir -p, one level at a time (node's recursive mkdir loops for ever under /proc, where a
 * missing name is ENOENT and its parent exists).
 */
function makeFolders(dir: string): void {
  if (existsSync(dir)) return;
  const parent = path.dirname(dir);
  if (parent !== dir) makeFolders(parent);
  mkdirSync(dir);
}
