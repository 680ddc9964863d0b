/**
 * How scriptgate names a file in messages (`file:line: message`), and the one test of whether a
 * path lies below a folder. Runs whenever a compile or config problem or a script error is
 * reported. Default: the path relative to the current working directory when the file lies below
 * it, else the absolute path. Returns a display string; never touches the disk.
 */
import path from 'node:path';

/**
 * True when `file` is `dir` itself or lies below it. A name that merely starts with two dots
 * (`..data`, the folder a Kubernetes ConfigMap volume swaps in) is below; only `..` climbs.
 */
export function isInside(dir: string, file: string): boolean {
  const rel = path.relative(dir, file);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

export function displayPath(file: string): string {
  const cwd = process.cwd();
  return file !== cwd && isInside(cwd, file) ? path.relative(cwd, file) : file;
}
