/**
 * The esbuild plugin that keeps a tenant's bundle inside its sandbox: it runs for every import
 * esbuild meets while bundling one tenant. Default: relative imports inside the tenant's scripts
 * folder resolve normally. It rejects (as an esbuild error at the import's file:line) imports of
 * Node built-ins (`fs`, `node:fs`), bare package names, and any file outside the folder (also via
 * symlinks). `scriptgate/runtime-api` is types only: a surviving import of it resolves to an empty
 * module, so `import type` and `import { type X }` both work.
 *
 * @example
 *   await esbuild.build({ plugins: [importGuard('/srv/tenants/acme')], … })
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import path from 'node:path';
import type { Loader, Plugin } from 'esbuild';
import { isInside } from './display-path.ts';

export const RUNTIME_API_MODULE = 'scriptgate/runtime-api';


/** esbuild's default loaders by extension, for the files this plugin reads itself. */
const LOADERS: Record<string, Loader> = { '.ts': 'ts', '.mts': 'ts', '.cts': 'ts', '.tsx': 'tsx', '.js': 'js', '.mjs': 'js', '.cjs': 'js', '.jsx': 'jsx', '.json': 'json', '.txt': 'text' };

/**
 * `onRead(file, sha1)`, when given, hears of every script file the plugin reads for the build, with
 * the SHA-1 of exactly the bytes esbuild compiled.
 */
export function importGuard(scriptsDir: string, realScriptsDir: string = scriptsDir, onRead?: (file: string, sha1: string) => void): Plugin {
  return {
    name: 'scriptgate-import-guard',
    setup(build) {
      build.onResolve({ filter: /.*/ }, function guardImport(args) {
        if (args.kind === 'entry-point') return undefined;
        const spec = args.path;
        if (spec === RUNTIME_API_MODULE || spec.startsWith(`${RUNTIME_API_MODULE}/`)) {
          return { path: RUNTIME_API_MODULE, namespace: 'scriptgate-types' };
        }
        if (spec.startsWith('node:') || isBuiltin(spec)) {
          return { errors: [{ text: `cannot import Node built-in "${spec}": phase scripts run in a sandbox without Node APIs` }] };
        }
        const relative = spec.startsWith('./') || spec.startsWith('../') || spec === '.' || spec === '..';
        if (!relative && !path.isAbsolute(spec)) {
          return { errors: [{ text: `cannot import package "${spec}": only relative imports inside the tenant's scripts folder are bundled` }] };
        }
        const target = path.resolve(args.resolveDir, spec);
        if (!isInside(scriptsDir, target)) {
          return { errors: [{ text: `cannot import "${spec}": it is outside the tenant's scripts folder ${scriptsDir}` }] };
        }
        return undefined;
      });
      build.onLoad({ filter: /.*/, namespace: 'scriptgate-types' }, function emptyTypesModule() {
        return { contents: 'export {};', loader: 'js' };
      });
      build.onLoad({ filter: /.*/, namespace: 'file' }, async function guardRealPath(args) {
        if (!isInside(realScriptsDir, args.path) && !isInside(scriptsDir, args.path)) {
          return { errors: [{ text: `cannot load ${args.path}: it resolves (through a symlink) outside the tenant's scripts folder` }] };
        }
        // Read here, so the bytes compiled are the bytes hashed (`onRead`): a file rewritten while
        // the build runs must not pair its new hash with the old code in the compile cache.
        const loader = LOADERS[path.extname(args.path).toLowerCase()];
        if (!onRead || !loader) return undefined;
        const contents = await readFile(args.path);
        onRead(args.path, createHash('sha1').update(contents).digest('hex'));
        return { contents, loader };
      });
    },
  };
}
