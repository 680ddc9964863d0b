/** scriptgate's version, read once from package.json. */
import { readFileSync } from 'node:fs';
import { fromRoot } from './package-root.ts';

export const VERSION: string = (JSON.parse(readFileSync(fromRoot('package.json'), 'utf8')) as { version: string }).version;
