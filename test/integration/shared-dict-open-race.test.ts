/**
 * Shared dicts across processes while another process opens the store: what a new cluster worker
 * (rolling restart) or an upgrade's successor does under load. Two processes increment one key as
 * fast as they can (single writes and writeBatch pairs) while a third opens the store 150 times,
 * incrementing once after each open. Every increment must return a distinct value and the values
 * must be exactly 1..total: no lost update, no value handed out twice, never going backwards.
 * (Without the store's gate, LMDB's open rewinds the shared transaction id and this loses or
 * duplicates hundreds of counts in most runs; see src/sandbox/shared-store.ts.)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { SHARED_OP, SharedStore } from '../../src/sandbox/shared-store.ts';

const CHILD = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../helpers/shared-store-child.ts');

interface Child {
  /** Resolves once the child has made its first write. */
  ready: Promise<void>;
  /** Ends the child's stdin (an `incr` child then stops). */
  stop: () => void;
  /** The values its increments returned, once it exits. */
  values: Promise<number[]>;
}

function child(args: string[]): Child {
  const c = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  onTestFinished(() => {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  c.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    if (err.includes('ready\n')) onReady();
  });
  const values = new Promise<number[]>((resolve, reject) =>
    c.on('exit', (code) => {
      onReady();
      if (code === 0) resolve((JSON.parse(out) as { values: number[] }).values);
      else reject(new Error(`child ${args.join(' ')} exited with ${code}: ${err}`));
    }),
  );
  return { ready, stop: () => c.stdin!.end(), values };
}

describe('shared dicts while a process opens the store', () => {
  it('two processes incrementing while a third opens the store 150 times lose no count', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sg-shm-race-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const writers = [child(['incr', dir]), child(['incr', dir])];
    await Promise.all(writers.map((w) => w.ready));
    const reopened = await child(['reopen', dir, '150']).values;
    for (const w of writers) w.stop();
    const all = [...reopened, ...(await Promise.all(writers.map((w) => w.values))).flat()];

    const distinct = new Set(all);
    const max = all.reduce((a, b) => Math.max(a, b), 0);
    expect({ count: all.length, distinct: distinct.size, max }).toEqual({ count: all.length, distinct: all.length, max: all.length });
    // And the stored value agrees (read from this process, opened afresh).
    const store = SharedStore.forConfig('race.yaml', { hits: { capacity: 10 } }, dir);
    try {
      expect(store.call('t', SHARED_OP.get, 'hits', 'n', undefined, undefined, undefined)).toBe(all.length);
    } finally {
      store.release();
    }
    expect(reopened).toHaveLength(150);
  }, 60_000);
});
