#!/usr/bin/env node
// Bundles scriptgate's TypeScript sources into dist/scriptgate.js (ESM, dependencies left as
// imports), which bin/scriptgate.js runs when it is newer than every file under src/: no
// TypeScript loader at run time (less memory, no per-function name wrappers). Runs on
// `npm install` (prepare) and any time by hand; without it the launcher runs src/ through tsx.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
await build({
  entryPoints: [path.join(root, 'src/cli/main.ts')],
  outfile: path.join(root, 'dist/scriptgate.js'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'warning',
});
