#!/usr/bin/env node
// `npm run bench`: scriptgate side by side with nginx, nginx + Lua and Node proxies, on loopback,
// measured with wrk; prints a table and the ratios, writes .bench-run/results.json.
// See scripts/bench/README.md for the rows, the figures and the env vars.
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { installCleanupHandlers, isStopping, stop, stopAll } from './procs.js';
import { ensureDeps } from './deps.js';
import { startNginx, nginxStatus, RUN_ROOT, REPO, referenceDir, SMALL_BODY, body64k } from './nginx.js';
import { freePort, get } from './net.js';
import { selectRows, scriptgateRoot } from './rows.js';
import { measureRow, mergeRounds } from './measure.js';
import { renderTable, computeRatios, renderRatios, renderWarnings } from './report.js';
import { parseDurationMs } from './wrk.js';
import { CLK_TCK } from './proc-stat.js';
import { ensureCert, H2_CONNECTIONS, H2_STREAMS } from './h2.js';

const log = (...a) => console.log(...a);

function readEnv() {
  const e = process.env;
  const dur = (name, def) => {
    const v = e[name] ?? def;
    if (!(parseDurationMs(v) >= 0)) throw new Error(`${name}=${v}: expected a wrk duration like 8s, 500ms or 0s`);
    return v;
  };
  const int = (name, def, min, max) => {
    const v = e[name] === undefined || e[name] === '' ? def : Number(e[name]);
    if (!Number.isInteger(v) || v < min || v > max) throw new Error(`${name}=${e[name]}: expected an integer ${min}..${max}`);
    return v;
  };
  return {
    duration: dur('BENCH_DURATION', '8s'),
    warmup: dur('BENCH_WARMUP', '2s'),
    repeat: int('BENCH_REPEAT', 1, 1, 9),
    // 1: repetitions go round all rows (row A, B, C, A, B, C …) instead of one row at a time, so a
    // machine whose speed drifts over minutes skews every row alike.
    interleave: int('BENCH_INTERLEAVE', 0, 0, 1) === 1,
    threads: int('BENCH_THREADS', 2, 1, 64),
    conns: int('BENCH_CONNECTIONS', 64, 1, 10_000),
    quietWait: dur('BENCH_QUIET_WAIT', '0s'),
    only: e.BENCH_ONLY ?? '',
    skip: e.BENCH_SKIP ?? '',
  };
}

function gitRev() {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8', timeout: 3000 });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

async function main() {
  const started = Date.now();
  installCleanupHandlers();
  const env = readEnv();
  const rows = selectRows(env.only, env.skip);
  const withH2 = rows.some((r) => r.protocol === 'h2');
  const { nginx: nginxBin, wrk: wrkBin, h2load: h2loadBin, openssl } = ensureDeps(log, { h2: withH2 });
  // the self-signed certificate of the HTTP/2 rows' TLS listeners, made on first use
  let cert;
  const tls = () => (cert ??= ensureCert(openssl));
  const ref = referenceDir();
  mkdirSync(RUN_ROOT, { recursive: true });

  // upstream.conf's /small body must be the one the checks expect
  const upstreamConf = readFileSync(path.join(ref, 'upstream.conf'), 'utf8');
  if (!upstreamConf.includes(JSON.stringify(SMALL_BODY).slice(1, -1))) log('[bench] note: upstream.conf /small body differs from the one the checks expect; checks of /small will fail');

  const perPath = ((parseDurationMs(env.warmup) + parseDurationMs(env.duration) + parseDurationMs(env.quietWait)) * env.repeat) / 1000;
  const totalS = rows.reduce((s, r) => s + r.paths.length * perPath + 5, 0);
  log(`[bench] reference configs: ${ref}`);
  if (scriptgateRoot() !== REPO) log(`[bench] scriptgate from ${scriptgateRoot()} (BENCH_SCRIPTGATE_ROOT)`);
  // bin/scriptgate.js runs dist/ only while it is newer than src/ (else the sources through tsx,
  // ~10% slower): build it now so an edit since `npm install` is measured as it will ship.
  const build = spawnSync(process.execPath, [path.join(scriptgateRoot(), 'scripts', 'build.js')], { stdio: 'inherit', timeout: 120_000 });
  if (build.status !== 0) log('[bench] note: scripts/build.js failed; scriptgate rows run the sources through tsx');
  log(`[bench] wrk -t${env.threads} -c${env.conns} -d${env.duration} (warm-up ${env.warmup}), repeat ${env.repeat}${env.interleave ? ' (interleaved)' : ''}, ${rows.length} row(s), about ${Math.round((totalS / 60) * 10) / 10} min; ${os.cpus().length} cores, CLK_TCK ${CLK_TCK}`);
  if (withH2) log(`[bench] h2 rows: h2load -D${env.duration} -c${H2_CONNECTIONS} -m${H2_STREAMS} -t1 over TLS (ALPN h2), warm-up ${env.warmup}`);

  const origin = await startNginx({ nginxBin, name: 'origin', conf: 'upstream.conf', port: await freePort(), workers: 1, www: { '64k': body64k() } });
  log(`[bench] origin: nginx pid ${origin.pid} on 127.0.0.1:${origin.port}`);
  const o = await get(origin.port, '/small');
  if (o.status !== 200) throw new Error(`origin /small answered ${o.status}`);
  await nginxStatus(origin.port);

  let results = [];
  try {
    if (env.interleave && env.repeat > 1) {
      const rounds = rows.map(() => []);
      for (let k = 0; k < env.repeat && !isStopping(); k++) {
        for (const [i, row] of rows.entries()) {
          log(`\n[bench] round ${k + 1}/${env.repeat}, ${row.id}: ${row.label} (${row.paths.join(', ')})`);
          rounds[i].push(await measureRow(row, { env: { ...env, repeat: 1 }, wrkBin, h2loadBin, tls, nginxBin, origin, log }));
          if (isStopping()) break;
        }
      }
      results = rounds.map(mergeRounds);
    } else {
      for (const row of rows) {
        log(`\n[bench] ${row.id}: ${row.label} (${row.paths.join(', ')})`);
        results.push(await measureRow(row, { env, wrkBin, h2loadBin, tls, nginxBin, origin, log }));
        if (isStopping()) break;
      }
    }
  } finally {
    if (!isStopping()) await stop(origin);
  }
  // Interrupted: the signal handler stops everything and exits; report nothing half-measured.
  if (isStopping()) return new Promise(() => {});

  const ratios = computeRatios(results);
  log('\nResults (req/CPU-s = requests per CPU-second of the proxy\'s processes: the figure that counts; ref = measured in shared/bench-reference):\n');
  log(renderTable(results));
  const warnings = renderWarnings(results);
  if (warnings.length) log('\nWarnings:\n' + warnings.map((w) => '  - ' + w).join('\n'));
  log('\nRatios (of requests per proxy CPU-second; the req/s ratio beside each):\n');
  log(renderRatios(ratios));

  const file = path.join(RUN_ROOT, 'results.json');
  const json = {
    date: new Date().toISOString(),
    git: gitRev(),
    node: process.version,
    cores: os.cpus().length,
    cpu: os.cpus()[0]?.model,
    clkTck: CLK_TCK,
    wrk: { threads: env.threads, connections: env.conns, duration: env.duration, warmup: env.warmup },
    h2load: withH2 ? { threads: 1, connections: H2_CONNECTIONS, streams: H2_STREAMS, duration: env.duration, warmup: env.warmup } : undefined,
    repeat: env.repeat,
    interleave: env.interleave,
    referenceDir: ref,
    scriptgateRoot: scriptgateRoot(),
    rows: results,
    ratios,
    warnings,
  };
  writeFileSync(file, JSON.stringify(json, null, 2) + '\n');
  log(`\n[bench] wrote ${path.relative(process.cwd(), file) || file} (run took ${Math.round((Date.now() - started) / 1000)} s)`);
}

main()
  .then(() => process.exit(0))
  .catch(async (e) => {
    console.error(`[bench] error: ${e?.stack ?? e}`);
    await stopAll().catch(() => {});
    process.exit(1);
  });
