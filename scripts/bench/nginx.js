// nginx control: finds the reference configs (../shared/bench-reference, else the copy in
// scripts/bench/reference), fills their placeholders into a run folder under .bench-run/, starts
// nginx in the foreground (daemon off, so its master PID is ours) and reads /nginx_status.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { start, stop } from './procs.js';
import { waitForPort, get } from './net.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..');
export const RUN_ROOT = path.join(REPO, '.bench-run');

/** Folder holding upstream.conf, proxy.conf, proxy-common.inc, lua.conf. */
export function referenceDir() {
  const shared = path.resolve(REPO, '..', 'shared', 'bench-reference');
  const need = ['upstream.conf', 'proxy.conf', 'proxy-common.inc', 'lua.conf'];
  if (need.every((f) => existsSync(path.join(shared, f)))) return shared;
  return path.join(here, 'reference');
}

/** The ~100-byte body of the origin's /small (kept in sync with upstream.conf by a check at start). */
export const SMALL_BODY = 'hello from the upstream, this is a small fixed response body used by the proxy benchmark.....\n';

/** 64 KiB of lowercase ASCII text (lines of 63 letters + newline). */
export function body64k() {
  const line = 'abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk\n';
  return Buffer.from(line.repeat(65536 / line.length), 'latin1');
}

function fill(text, vars) {
  return text.replace(/@([A-Z_]+)@/g, (m, k) => (k in vars ? String(vars[k]) : m));
}

/**
 * Fill `conf` (passed through `transform`, e.g. to make its listener http2) and proxy-common.inc
 * into RUN_ROOT/name and start nginx. Returns the
 * process handle plus port. Throws (after stopping it) when nginx does not listen in time.
 */
export async function startNginx({ nginxBin, name, conf, port, upstreamPort = 0, workers = 1, www, transform = (t) => t }) {
  const ref = referenceDir();
  const run = path.join(RUN_ROOT, name);
  for (const d of ['tmp/body', 'tmp/proxy', 'tmp/fastcgi', 'tmp/uwsgi', 'tmp/scgi']) mkdirSync(path.join(run, d), { recursive: true });
  const vars = { PORT: port, UPSTREAM_PORT: upstreamPort, WORKERS: workers, RUN: run };
  writeFileSync(path.join(run, 'nginx.conf'), fill(transform(readFileSync(path.join(ref, conf), 'utf8')), vars));
  writeFileSync(path.join(run, 'proxy-common.inc'), fill(readFileSync(path.join(ref, 'proxy-common.inc'), 'utf8'), vars));
  if (www) {
    mkdirSync(path.join(run, 'www'), { recursive: true });
    for (const [file, data] of Object.entries(www)) writeFileSync(path.join(run, 'www', file), data);
  }
  const args = ['-p', run + '/', '-c', path.join(run, 'nginx.conf'), '-e', path.join(run, 'error.log'), '-g', 'daemon off;'];
  const handle = start(name, nginxBin, args, { cwd: run, logFile: path.join(run, 'stdout.log') });
  const ok = await waitForPort(port, { timeoutMs: 10_000, isDead: () => handle.entry.exited });
  if (!ok) {
    let tail = '';
    try {
      tail = readFileSync(path.join(run, 'error.log'), 'utf8').trim().split('\n').slice(-3).join(' | ');
    } catch {}
    await stop(handle);
    throw new Error(`nginx (${conf}) did not listen on ${port}: ${tail || 'no error log'}`);
  }
  return { ...handle, port, run };
}

/** The origin's stub_status: {active, accepts, handled, requests}. */
export async function nginxStatus(port) {
  const r = await get(port, '/nginx_status', { timeoutMs: 3000 });
  const m = /server accepts handled requests\s+(\d+)\s+(\d+)\s+(\d+)/.exec(r.body.toString());
  const a = /Active connections:\s*(\d+)/.exec(r.body.toString());
  if (!m) throw new Error(`unexpected /nginx_status: ${r.body.toString().slice(0, 200)}`);
  return { active: Number(a?.[1] ?? 0), accepts: Number(m[1]), handled: Number(m[2]), requests: Number(m[3]) };
}
