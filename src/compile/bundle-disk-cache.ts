/**
 * Compiled tenant bundles shared between the processes of one machine, so a cluster compiles each
 * tenant once: the primary compiles (at start and before each reload) and its workers find the
 * bundle here instead of running esbuild again. An entry is used only when every input file still
 * has the SHA-1 it was built from. Lives in `<tmpdir>/scriptgate-bundles-<uid>` (mode 0700; not
 * used if another user owns it). Every failure (missing folder, full disk, bad JSON) just means
 * "not cached": compiling is always correct, the cache only saves time.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, statSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface DiskEntry<B> {
  bundle: B;
  /** Absolute path and SHA-1 of every input file of the bundle. */
  inputs: Array<[string, string]>;
}

let dir: string | null | undefined;

/** The cache folder, created on first use; null when it cannot be used safely. */
function cacheDir(): string | null {
  if (dir !== undefined) return dir;
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  const d = path.join(os.tmpdir(), `scriptgate-bundles-${uid}`);
  try {
    mkdirSync(d, { recursive: true, mode: 0o700 });
    const st = statSync(d);
    dir = st.uid === uid && (st.mode & 0o077) === 0 ? d : null;
  } catch {
    dir = null;
  }
  return dir;
}

function fileFor(key: string): string | null {
  const d = cacheDir();
  return d && path.join(d, `${createHash('sha256').update(key).digest('hex').slice(0, 32)}.json`);
}

/** The entry stored for `key`, or undefined. The caller checks its inputs. */
export async function readDiskEntry<B>(key: string): Promise<DiskEntry<B> | undefined> {
  const file = fileFor(key);
  if (!file) return undefined;
  try {
    const e = JSON.parse(await readFile(file, 'utf8')) as DiskEntry<B> & { key?: string };
    return e.key === key ? e : undefined;
  } catch {
    return undefined;
  }
}

/** Stores an entry for `key` (atomically: written aside, then renamed). */
export async function writeDiskEntry<B>(key: string, entry: DiskEntry<B>): Promise<void> {
  const file = fileFor(key);
  if (!file) return;
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, JSON.stringify({ key, ...entry }), { mode: 0o600 });
    await rename(tmp, file);
  } catch {
    /* not cached, that is all */
  }
}
