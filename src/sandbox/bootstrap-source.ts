/**
 * Builds the trusted bootstrap (./bootstrap/main.ts and what it imports) into one classic script
 * for the isolates. Runs once per process, on first use, with esbuild's async API; later calls get
 * the cached promise. Returns the script source; a build failure is a scriptgate bug and rejects.
 */
import { fromRoot } from '../package-root.ts';
import * as esbuild from 'esbuild';

/** File name the bootstrap is compiled under inside the isolate (shows in stack frames). */
export const BOOTSTRAP_FILENAME = 'scriptgate-bootstrap.js';

let cached: Promise<string> | undefined;

export function bootstrapSource(): Promise<string> {
  cached ??= (async function buildBootstrap() {
    const result = await esbuild.build({
      entryPoints: [fromRoot('src', 'sandbox', 'bootstrap', 'main.ts')],
      bundle: true,
      write: false,
      format: 'iife',
      platform: 'neutral',
      target: 'es2022',
      logLevel: 'silent',
      legalComments: 'none',
    });
    return result.outputFiles[0]!.text;
  })();
  return cached;
}
