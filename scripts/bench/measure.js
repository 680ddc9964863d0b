// Measures one row: starts its proxy, checks it answers correctly, then per path (and repetition)
// a wrk warm-up and a measured wrk run, with the proxy tree's CPU-seconds and RSS and the
// origin's accepted-connection count around the measured window. Always stops the proxy.
// HTTP/2 rows (row.protocol 'h2') are checked over HTTP/2+TLS and measured with h2load instead.
import { get } from './net.js';
import { stop, isStopping } from './procs.js';
import { runWrk, parseDurationMs } from './wrk.js';
import { runH2load, h2get } from './h2.js';
import { cpuSnapshot, cpuSecondsBetween, startRssSampler, systemBusyTicks, selfTicks, otherLoad, treeRssKiB, CLK_TCK } from './proc-stat.js';
import os from 'node:os';
import { nginxStatus, SMALL_BODY, body64k } from './nginx.js';

const MiB = 1024;

/** The body a correct proxy returns for `p` (uppercased on the scripted rows). */
function expectedBody(p, scripted) {
  const b = p.endsWith('/64k') ? body64k() : Buffer.from(SMALL_BODY, 'latin1');
  return scripted ? Buffer.from(b.toString('latin1').toUpperCase(), 'latin1') : b;
}

/** Throws with a one-line reason unless the proxy answers every path as it should. */
export async function checkRow(row, port) {
  const h2 = row.protocol === 'h2';
  const fetch = h2 ? h2get : get;
  for (const p of row.paths) {
    const r = await fetch(port, p, { timeoutMs: 10_000 });
    if (h2 && r.alpn !== 'h2') throw new Error(`GET ${p}: ALPN negotiated ${r.alpn}, not h2`);
    if (r.status !== 200) throw new Error(`GET ${p} answered ${r.status}: ${r.body.toString('latin1').slice(0, 120).trim()}`);
    const want = expectedBody(p, row.scripted);
    if (!r.body.equals(want)) {
      throw new Error(`GET ${p}: body of ${r.body.length} bytes is not the expected ${want.length}${row.scripted ? ' (uppercased)' : ''} bytes: ${JSON.stringify(r.body.toString('latin1').slice(0, 40))}…`);
    }
    if (row.scripted) {
      const xp = r.headers['x-proxy'];
      if (!xp) throw new Error(`GET ${p}: no x-proxy response header`);
      const blocked = await fetch(port, p, { headers: { 'x-block': '1' }, timeoutMs: 10_000 });
      if (blocked.status !== 403) throw new Error(`GET ${p} with x-block answered ${blocked.status}, not 403`);
    }
  }
}

const median = (xs) => {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};

/**
 * With BENCH_QUIET_WAIT set, wait (at most that long) until other processes use less than 10 % of
 * the machine's CPU over a second, so that a busy neighbour does not skew the run.
 */
async function waitQuiet(env, pids, log) {
  const budget = parseDurationMs(env.quietWait);
  if (!(budget > 0)) return;
  const deadline = Date.now() + budget;
  let load = 1;
  while (Date.now() < deadline) {
    load = await otherLoad(1000, pids);
    if (load < 0.1) return;
  }
  log(`  machine still busy after ${env.quietWait} (other processes ${(load * 100).toFixed(0)}% CPU); measuring anyway`);
}

/** One warm-up + one measured wrk (or h2load, with h2loadBin) run of one path. */
async function measureOnce({ env, wrkBin, h2loadBin, url, proxyPid, originPid, originPort, log }) {
  const load = (duration) => (h2loadBin ? runH2load({ h2loadBin, url, duration }) : runWrk({ wrkBin, url, threads: env.threads, conns: env.conns, duration }));
  await waitQuiet(env, [originPid, ...(proxyPid ? [proxyPid] : [])], log);
  const rss = proxyPid ? startRssSampler(proxyPid, 200) : null;
  let mem;
  try {
    if (parseDurationMs(env.warmup) > 0) await load(env.warmup);
    const stBefore = await nginxStatus(originPort);
    const pBefore = proxyPid ? cpuSnapshot(proxyPid) : null;
    const oBefore = cpuSnapshot(originPid);
    const rssBefore = proxyPid ? treeRssKiB(proxyPid) : null;
    const sysBefore = systemBusyTicks();
    const selfBefore = selfTicks();
    const t0 = Date.now();
    const w = await load(env.duration);
    const pAfter = proxyPid ? cpuSnapshot(proxyPid) : null;
    const oAfter = cpuSnapshot(originPid);
    const sysAfter = systemBusyTicks();
    const rssAfter = proxyPid ? treeRssKiB(proxyPid) : null;
    const selfAfter = selfTicks();
    const windowS = (Date.now() - t0) / 1000;
    const stAfter = await nginxStatus(originPort);
    const proxyCpu = proxyPid ? cpuSecondsBetween(pBefore, pAfter) : null;
    const originCpu = cpuSecondsBetween(oBefore, oAfter);
    mem = rss?.stop();
    // CPU used by processes that are not part of the measurement (other jobs on the machine):
    // everything the kernel counted minus proxy, origin, and this harness with wrk.
    const harnessS = (selfAfter - selfBefore) / CLK_TCK;
    const otherCpuS = (sysAfter - sysBefore) / CLK_TCK - (proxyCpu?.cpuS ?? 0) - originCpu.cpuS - harnessS;
    const out = {
      rps: w.rps,
      requests: w.requests,
      p50Ms: w.p50Ms,
      p99Ms: w.p99Ms,
      non2xx: w.non2xx,
      socketErrors: w.socketErrors,
      // h2load only: mean/max latency (it prints no percentiles), status codes, failed/errored
      ...(h2loadBin ? { meanMs: w.meanMs, maxMs: w.maxMs, status: w.status, failed: w.failed, errored: w.errored, h2Timeout: w.timeout, tool: 'h2load' } : {}),
      proxyCpuS: proxyCpu ? proxyCpu.cpuS : null,
      originCpuS: originCpu.cpuS,
      wrkAndHarnessCpuS: harnessS,
      otherCpuS: Math.max(0, otherCpuS),
      otherLoad: Math.min(1, Math.max(0, otherCpuS) / (windowS * os.cpus().length)),
      rpsPerCpu: proxyCpu && proxyCpu.cpuS > 0 ? w.requests / proxyCpu.cpuS : null,
      cpuSPer10k: proxyCpu ? (proxyCpu.cpuS / w.requests) * 1e4 : null,
      peakRssMiB: mem ? mem.peakSumKiB / MiB : null,
      maxHwmMiB: mem ? mem.maxHwmKiB / MiB : null,
      // RSS at the start and end of the measured window (after warm-up): steady growth is a leak
      rssStartMiB: rssBefore === null ? null : rssBefore / MiB,
      rssEndMiB: rssAfter === null ? null : rssAfter / MiB,
      rssGrowthMiB: rssAfter === null ? null : (rssAfter - rssBefore) / MiB,
      processes: mem ? mem.perProcess.map((p) => ({ pid: p.pid, comm: p.comm, hwmMiB: +(p.hwmKiB / MiB).toFixed(1) })) : [],
      cpuPerProcess: proxyCpu ? proxyCpu.perProcess : [],
      // the status call itself is one accepted connection
      upstreamNewConns: stAfter.accepts - stBefore.accepts - 1,
      upstreamRequests: stAfter.requests - stBefore.requests - 1,
    };
    return out;
  } finally {
    if (!mem) rss?.stop();
  }
}

/** Median of every numeric field over repetitions (the object keeps the reps too). */
function combine(reps) {
  if (reps.length === 1) return { ...reps[0], reps };
  const keys = ['rps', 'requests', 'p50Ms', 'p99Ms', 'meanMs', 'maxMs', 'non2xx', 'proxyCpuS', 'originCpuS', 'rpsPerCpu', 'cpuSPer10k', 'peakRssMiB', 'maxHwmMiB', 'otherCpuS', 'otherLoad', 'upstreamNewConns', 'upstreamRequests'];
  const out = { ...reps[0], reps };
  for (const k of keys) if (k in reps[0]) out[k] = reps[0][k] === null ? null : median(reps.map((r) => r[k]));
  // errors add up over the repetitions; memory growth and peaks are the worst one
  out.non2xx = reps.reduce((s, r) => s + (r.non2xx || 0), 0);
  out.socketErrors = {};
  for (const k of ['connect', 'read', 'write', 'timeout']) out.socketErrors[k] = reps.reduce((s, r) => s + (r.socketErrors?.[k] || 0), 0);
  for (const k of ['peakRssMiB', 'maxHwmMiB', 'rssGrowthMiB']) if (reps[0][k] !== null) out[k] = Math.max(...reps.map((r) => r[k]));
  const worst = reps.reduce((a, b) => (b.rssGrowthMiB > a.rssGrowthMiB ? b : a));
  out.rssStartMiB = worst.rssStartMiB;
  out.rssEndMiB = worst.rssEndMiB;
  out.requests = median(reps.map((r) => r.requests));
  return out;
}

/**
 * Runs one row end to end. Resolves {id, label, status: 'ok'|'failed', reason?, results: {path: …}}
 * and never rejects: a proxy that fails to start or answer is reported as failed.
 */
export async function measureRow(row, { env, wrkBin, h2loadBin, tls, nginxBin, origin, log }) {
  const h2 = row.protocol === 'h2';
  const res = { id: row.id, label: row.label, status: 'ok', results: {} };
  let handle = null;
  const t0 = Date.now();
  try {
    handle = await row.start({ nginxBin, originPort: origin.port, tls });
    const port = handle ? handle.port : origin.port;
    await checkRow(row, port);
    for (const p of row.paths) {
      const reps = [];
      if (isStopping()) break;
      for (let i = 0; i < env.repeat && !isStopping(); i++) {
        if (handle?.entry?.exited) throw new Error(`proxy exited (${handle.entry.code ?? handle.entry.signal}) during the run`);
        try {
          const url = `${h2 ? 'https' : 'http'}://127.0.0.1:${port}${p}`;
          reps.push(await measureOnce({ env, wrkBin, h2loadBin: h2 ? h2loadBin : undefined, url, proxyPid: handle?.pid, originPid: origin.pid, originPort: origin.port, log }));
        } catch (e) {
          reps.push({ error: e.message });
        }
      }
      if (isStopping()) break;
      const ok = reps.filter((r) => !r.error);
      res.results[p] = ok.length ? combine(ok) : { error: reps[0].error };
      const r = res.results[p];
      log(r.error ? `  ${p}: failed: ${r.error}` : `  ${p}: ${Math.round(r.rps)} req/s${r.rpsPerCpu ? `, ${Math.round(r.rpsPerCpu)} req/CPU-s` : ''}${Number.isFinite(r.meanMs) ? `, mean ${r.meanMs.toFixed(2)} ms` : ''}${r.non2xx ? `, ${r.non2xx} non-2xx` : ''}`);
    }
    if (isStopping()) throw new Error('interrupted');
    // still answering correctly after the load?
    if (handle?.entry?.exited) throw new Error(`proxy exited (${handle.entry.code ?? handle.entry.signal}) during the run`);
    await checkRow(row, port).catch((e) => {
      res.afterLoad = `check after load failed: ${e.message}`;
      log(`  ${res.afterLoad}`);
    });
  } catch (e) {
    res.status = 'failed';
    res.reason = String(e?.message ?? e).replace(/\s+/g, ' ').slice(0, 400);
    log(`  failed: ${res.reason}`);
  } finally {
    if (handle) await stop(handle);
    res.seconds = (Date.now() - t0) / 1000;
  }
  return res;
}

/**
 * One row's result from its interleaved rounds (BENCH_INTERLEAVE): each path's repetitions are
 * combined as measureRow combines consecutive ones. The row is ok when every round was.
 */
export function mergeRounds(rounds) {
  const first = rounds[0];
  const failed = rounds.find((r) => r.status !== 'ok');
  const out = { id: first.id, label: first.label, status: failed ? 'failed' : 'ok', results: {}, seconds: rounds.reduce((s, r) => s + (r.seconds || 0), 0) };
  if (failed) out.reason = failed.reason;
  const afterLoad = rounds.find((r) => r.afterLoad);
  if (afterLoad) out.afterLoad = afterLoad.afterLoad;
  const paths = new Set(rounds.flatMap((r) => Object.keys(r.results)));
  for (const p of paths) {
    const reps = rounds.flatMap((r) => r.results[p]?.reps ?? []);
    out.results[p] = reps.length ? combine(reps) : (rounds.find((r) => r.results[p])?.results[p] ?? { error: 'no measurement' });
  }
  return out;
}
