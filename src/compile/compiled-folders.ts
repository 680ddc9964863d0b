/**
 * The folders of the files the tenant bundles of this process read (entry scripts and everything
 * they import, subfolders included), noted by compile-tenant.ts as it builds or reuses a bundle.
 * The config watcher (control/watch.ts) watches them, so an edit to an imported helper reloads.
 * No dependencies, so a process without scripts loads nothing of esbuild for it.
 */
const folders = new Set<string>();

/** Notes the folders of `files` (absolute paths). */
export function noteCompiledFolders(files: Iterable<string>): void {
  for (const f of files) folders.add(f.slice(0, Math.max(1, f.lastIndexOf('/'))));
}

/** Every folder noted so far. */
export function compiledFolders(): string[] {
  return [...folders];
}
