// The benchmark's rows: what each one starts, on which paths it is measured, and what a correct
// answer looks like. `start()` returns a process handle (with port) or null for "no proxy".
import path from 'node:path';
import { mkdirSync, readFileSync } from 'node:fs';
import { start, stop } from './procs.js';
import { freePort, waitForPort } from './net.js';
import { startNginx, REPO, RUN_ROOT } from './nginx.js';
import { writeScriptgateConfig } from './scriptgate-config.js';
import { h2ProxyConf } from './h2.js';

const PLAIN_PATHS = ['/small', '/64k'];
const API_PATHS = ['/api/small', '/api/64k'];

/** The most telling lines of a log: the first error-looking line, then the last few. */
function tail(file, n = 3) {
  try {
    const lines = readFileSync(file, 'utf8').trim().split('\n').filter((l) => l.trim());
    const err = lines.find((l) => /error|cannot|failed|fatal/i.test(l) && !/^\s+at /.test(l));
    const last = lines.slice(-n).filter((l) => l !== err);
    return [err, ...last].filter(Boolean).join(' | ').slice(0, 600);
  } catch {
    return '';
  }
}

/** Start a Node process that should listen on `port`; fail with its log tail if it does not. */
async function startNode(id, args, port, { timeoutMs = 15_000, cwd = REPO } = {}) {
  const dir = path.join(RUN_ROOT, id);
  mkdirSync(dir, { recursive: true });
  const logFile = path.join(dir, 'stdout.log');
  const h = start(id, process.execPath, args, { cwd, logFile });
  const ok = await waitForPort(port, { timeoutMs, isDead: () => h.entry.exited });
  if (!ok) {
    const how = h.entry.exited ? `exited (${h.entry.code ?? h.entry.signal})` : `not listening on ${port} after ${timeoutMs / 1000}s`;
    await stop(h);
    throw new Error(`${how}${tail(logFile) ? ': ' + tail(logFile) : ''}`);
  }
  return { ...h, port, logFile };
}

/** Where scriptgate is run from: this repo, or another checkout (BENCH_SCRIPTGATE_ROOT). */
export function scriptgateRoot() {
  return path.resolve(process.env.BENCH_SCRIPTGATE_ROOT || REPO);
}

async function scriptgate(id, ctx, { workers, phases, http2 = false }) {
  const port = await freePort();
  const cfg = writeScriptgateConfig({ dir: path.join(RUN_ROOT, id), port, originPort: ctx.originPort, workers, phases, http2, tls: http2 ? ctx.tls() : undefined });
  const root = scriptgateRoot();
  return startNode(id, ['--no-node-snapshot', path.join(root, 'bin', 'scriptgate.js'), 'start', '-c', cfg], port, { timeoutMs: 30_000, cwd: root });
}

/**
 * `protocol: 'h2'` rows listen with TLS (ALPN h2, the self-signed certificate of ctx.tls()) and are
 * checked over HTTP/2 and measured with h2load instead of wrk; `group` is a BENCH_ONLY/SKIP alias.
 * @typedef {{id: string, label: string, paths: string[], scripted: boolean, proxyHeader?: string,
 *   protocol?: 'h2', group?: string,
 *   start: (ctx: {nginxBin: string, originPort: number, tls: () => {cert: string, key: string}}) => Promise<any>}} Row
 * @type {Row[]}
 */
export const ROWS = [
  {
    id: 'direct',
    label: 'direct to origin (no proxy)',
    paths: PLAIN_PATHS,
    scripted: false,
    start: async () => null,
  },
  {
    id: 'nginx',
    label: 'nginx proxy_pass, 1w',
    paths: PLAIN_PATHS,
    scripted: false,
    start: async (ctx) => startNginx({ nginxBin: ctx.nginxBin, name: 'nginx', conf: 'proxy.conf', port: await freePort(), upstreamPort: ctx.originPort, workers: 1 }),
  },
  {
    id: 'nginx-lua',
    label: 'nginx + Lua five phases, 1w',
    paths: API_PATHS,
    scripted: true,
    proxyHeader: 'lua',
    start: async (ctx) => startNginx({ nginxBin: ctx.nginxBin, name: 'nginx-lua', conf: 'lua.conf', port: await freePort(), upstreamPort: ctx.originPort, workers: 1 }),
  },
  {
    id: 'baseline',
    label: 'bare node:http + undici',
    paths: PLAIN_PATHS,
    scripted: false,
    start: async (ctx) => {
      const port = await freePort();
      return startNode('baseline', [path.join(REPO, 'scripts', 'baseline-proxy.js'), String(port), `127.0.0.1:${ctx.originPort}`], port);
    },
  },
  {
    id: 'baseline-phases',
    label: 'bare node + 5 tasks plain JS',
    paths: API_PATHS,
    scripted: true,
    proxyHeader: 'baseline',
    start: async (ctx) => {
      const port = await freePort();
      return startNode('baseline-phases', [path.join(REPO, 'scripts', 'baseline-proxy-phases.js'), String(port), `127.0.0.1:${ctx.originPort}`], port);
    },
  },
  {
    id: 'node-http-proxy',
    label: 'node-http-proxy',
    paths: PLAIN_PATHS,
    scripted: false,
    start: async (ctx) => {
      const port = await freePort();
      return startNode('node-http-proxy', [path.join(REPO, 'scripts', 'node-http-proxy.js'), String(port), `127.0.0.1:${ctx.originPort}`], port);
    },
  },
  {
    id: 'scriptgate-1w',
    label: 'scriptgate, no scripts, 1w',
    paths: PLAIN_PATHS,
    scripted: false,
    start: (ctx) => scriptgate('scriptgate-1w', ctx, { workers: 1, phases: false }),
  },
  {
    id: 'scriptgate-auto',
    label: 'scriptgate, no scripts, auto',
    paths: PLAIN_PATHS,
    scripted: false,
    start: (ctx) => scriptgate('scriptgate-auto', ctx, { workers: 'auto', phases: false }),
  },
  {
    id: 'scriptgate-phases',
    label: 'scriptgate, five phases, 1w',
    paths: API_PATHS,
    scripted: true,
    proxyHeader: 'scriptgate',
    start: (ctx) => scriptgate('scriptgate-phases', ctx, { workers: 1, phases: true }),
  },
  {
    id: 'nginx-h2',
    label: 'nginx http2+TLS proxy_pass, 1w',
    paths: ['/small'],
    scripted: false,
    protocol: 'h2',
    group: 'h2',
    start: async (ctx) =>
      startNginx({ nginxBin: ctx.nginxBin, name: 'nginx-h2', conf: 'proxy.conf', transform: (t) => h2ProxyConf(t, ctx.tls()), port: await freePort(), upstreamPort: ctx.originPort, workers: 1 }),
  },
  {
    id: 'scriptgate-h2',
    label: 'scriptgate h2+TLS listener, 1w',
    paths: ['/small'],
    scripted: false,
    protocol: 'h2',
    group: 'h2',
    start: (ctx) => scriptgate('scriptgate-h2', ctx, { workers: 1, phases: false, http2: true }),
  },
];

/** Rows selected by BENCH_ONLY / BENCH_SKIP (comma-separated ids, or a group: `h2`). */
export function selectRows(only, skip) {
  const ids = new Set([...ROWS.map((r) => r.id), ...ROWS.map((r) => r.group).filter(Boolean)]);
  const list = (s) => (s ? s.split(',').map((x) => x.trim()).filter(Boolean) : []);
  for (const id of [...list(only), ...list(skip)]) if (!ids.has(id)) throw new Error(`unknown row "${id}"; rows are: ${[...ids].join(', ')}`);
  const named = (r, l) => l.includes(r.id) || (r.group !== undefined && l.includes(r.group));
  let rows = ROWS;
  if (list(only).length) rows = rows.filter((r) => named(r, list(only)));
  if (list(skip).length) rows = rows.filter((r) => !named(r, list(skip)));
  return rows;
}
