/**
 * How scriptgate names a file in messages (`file:line: message`). Runs whenever a compile problem
 * or a script error is reported. Default: the path relative to the current working directory when
 * the file lies below it, else the absolute path. Returns a display string; never touches the disk.
 */
import path from 'node:path';

export function displayPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}
