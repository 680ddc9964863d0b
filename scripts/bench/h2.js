// HTTP/2 rows: a self-signed certificate for the TLS listeners, the nginx http2 config derived from
// the reference proxy.conf, an HTTP/2 GET for the correctness checks, and h2load (run + parse).
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import http2 from 'node:http2';
import { spawnSync } from 'node:child_process';
import { parseDurationMs, runBounded } from './wrk.js';
import { RUN_ROOT } from './nginx.js';

/**
 * h2load -c / -m (env BENCH_H2_CONNECTIONS / BENCH_H2_STREAMS); -t is 1. 16 x 8 = 128 streams in
 * flight, no more than the upstream keep-alive pools (nginx keepalive 128, scriptgate 128
 * connections), so neither proxy has to open and close upstream connections under the load.
 */
const envInt = (name, def) => {
  const v = process.env[name] ? Number(process.env[name]) : def;
  if (!Number.isInteger(v) || v < 1 || v > 10_000) throw new Error(`${name}=${process.env[name]}: expected an integer 1..10000`);
  return v;
};
export const H2_CONNECTIONS = envInt('BENCH_H2_CONNECTIONS', 16);
export const H2_STREAMS = envInt('BENCH_H2_STREAMS', 8);

/**
 * A self-signed certificate (CN/SAN 127.0.0.1 and localhost) in RUN_ROOT/tls, made once with
 * openssl and reused by later runs. Returns {cert, key} absolute paths.
 */
export function ensureCert(opensslBin = 'openssl') {
  const dir = path.join(RUN_ROOT, 'tls');
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  if (existsSync(cert) && existsSync(key)) return { cert, key };
  mkdirSync(dir, { recursive: true });
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '3650', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', key, '-out', cert];
  const r = spawnSync(opensslBin, args, { encoding: 'utf8', timeout: 20_000 });
  if (r.status !== 0) throw new Error(`openssl req failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout || '').trim().slice(0, 300)}`);
  return { cert, key };
}

/**
 * proxy.conf with its listener turned into `listen … ssl http2` with the certificate (nginx 1.22
 * syntax; 1.25+ would take `http2 on;` but still accepts this with a warning).
 */
export function h2ProxyConf(proxyConf, { cert, key }) {
  const re = /^(\s*)listen\s+127\.0\.0\.1:@PORT@([^;]*);/m;
  if (!re.test(proxyConf)) throw new Error('proxy.conf has no `listen 127.0.0.1:@PORT@ …;` line to turn into an http2 listener');
  return proxyConf.replace(re, (_, ind, rest) =>
    [
      `${ind}listen 127.0.0.1:@PORT@ ssl http2${rest};`,
      `${ind}ssl_certificate ${cert};`,
      `${ind}ssl_certificate_key ${key};`,
      `${ind}ssl_session_cache shared:SSL:1m;`,
    ].join('\n'),
  );
}

/** HTTP/2 GET over TLS (ALPN h2, self-signed accepted) → {status, headers, body, alpn}. */
export function h2get(port, p, { headers = {}, timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    const timer = setTimeout(() => done(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    let settled = false;
    const done = (err, val) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.close();
      session.destroy();
      err ? reject(err) : resolve(val);
    };
    session.on('error', (e) => done(e));
    const req = session.request({ ':path': p, ':method': 'GET', ...headers });
    const chunks = [];
    let resHeaders = {};
    req.on('response', (h) => (resHeaders = h));
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => done(null, { status: Number(resHeaders[':status']), headers: resHeaders, body: Buffer.concat(chunks), alpn: session.alpnProtocol }));
    req.on('error', (e) => done(e));
    req.end();
  });
}

/** h2load's duration ("1.23ms", "45us", "2.1s") → ms. */
function h2Ms(s) {
  const m = /^([\d.]+)(us|ms|s)$/.exec(s);
  return m ? Number(m[1]) * { us: 1e-3, ms: 1, s: 1000 }[m[2]] : NaN;
}

/** Parse h2load's text report. Missing figures come back as NaN. */
export function parseH2load(text) {
  const n = (re) => {
    const m = re.exec(text);
    return m ? Number(m[1]) : NaN;
  };
  const fin = /finished in ([\d.]+\w+), ([\d.]+) req\/s/.exec(text);
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(text);
  const st = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(text);
  const t = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)/.exec(text);
  return {
    protocol: /Application protocol: (\S+)/.exec(text)?.[1],
    durationMs: fin ? h2Ms(fin[1]) : NaN,
    rps: fin ? Number(fin[2]) : NaN,
    total: req ? +req[1] : NaN,
    done: req ? +req[3] : NaN,
    succeeded: req ? +req[4] : NaN,
    failed: req ? +req[5] : NaN,
    errored: req ? +req[6] : NaN,
    timeout: req ? +req[7] : NaN,
    status: st ? { '2xx': +st[1], '3xx': +st[2], '4xx': +st[3], '5xx': +st[4] } : undefined,
    latency: t ? { minMs: h2Ms(t[1]), maxMs: h2Ms(t[2]), meanMs: h2Ms(t[3]), sdMs: h2Ms(t[4]) } : undefined,
    bytesTotal: n(/traffic: [\d.]+\w* \((\d+)\) total/),
  };
}

/**
 * h2load -D <duration> -c -m -t1 over TLS (ALPN h2). Resolves an object shaped like runWrk's
 * ({rps, requests, p50Ms, p99Ms, non2xx, socketErrors}, p50/p99 NaN: h2load prints no percentiles)
 * plus the h2load figures. Stopped by PID if it overruns by 15 s.
 */
export async function runH2load({ h2loadBin, url, duration, conns = H2_CONNECTIONS, streams = H2_STREAMS }) {
  const ms = Math.max(1, Math.round(parseDurationMs(duration)));
  const args = ['-D', `${ms}ms`, '-c', String(conns), '-m', String(streams), '-t', '1', url];
  const h = await runBounded('h2load', h2loadBin, args, ms);
  const out = h.entry.out;
  const p = parseH2load(out);
  if (!Number.isFinite(p.rps) || !Number.isFinite(p.done)) throw new Error(`could not parse h2load output: ${out.slice(0, 300)}`);
  if (p.protocol !== 'h2') throw new Error(`h2load negotiated ${p.protocol ?? 'no protocol'}, not h2`);
  const s = p.status ?? { '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 };
  return {
    raw: out,
    ...p,
    // rps over the whole -D window (h2load's own figure counts from its start, as wrk's does)
    requests: p.done,
    p50Ms: NaN,
    p99Ms: NaN,
    meanMs: p.latency?.meanMs ?? NaN,
    maxMs: p.latency?.maxMs ?? NaN,
    non2xx: s['4xx'] + s['5xx'],
    socketErrors: { connect: 0, read: p.errored || 0, write: 0, timeout: p.timeout || 0 },
  };
}
