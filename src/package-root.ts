/**
 * The folder scriptgate is installed in (the one holding its package.json), found once by walking
 * up from this module. Code that reads shipped files (package.json, examples/, the sandbox
 * bootstrap's source) resolves them from here, so it works the same from src/ (run through tsx)
 * and from the bundled dist/scriptgate.js.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'scriptgate') return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('scriptgate: cannot find its own package.json');
    dir = up;
  }
}

export const PACKAGE_ROOT = findRoot();

/** A path inside the installed package, e.g. `fromRoot('examples', 'load-balancer')`. */
export function fromRoot(...parts: string[]): string {
  return path.join(PACKAGE_ROOT, ...parts);
}
