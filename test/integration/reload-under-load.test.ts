/**
 * Hot reload and zero-downtime restart under steady load, with the real CLI: 20 reloads that
 * change what the scripts answer, one reload with a broken script, and one SIGUSR2 upgrade, while
 * a bounded load generator keeps several keep-alive connections busy. No request may fail, every
 * response must come whole from one version (header and body agree), and the broken script never
 * serves.
 */
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Pool } from 'undici';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startOrigin, writeConfig } from '../helpers/servers.ts';
import { freePort, spawnCli } from '../helpers/spawn-cli.ts';

const headerScript = (v: string) =>
  `export default function (ctx: any) { ctx.response.headers.set('x-version', '${v}'); ctx.response.headers.set('x-hits', String(ctx.shared('hits').incr('n', 1, 0))); }\n`;
const bodyScript = (v: string) => `export default function (ctx: any, chunk: string, eof: boolean) { return eof ? chunk + '|${v}' : chunk; }\n`;

/** A TCP echo server for the config's stream (closed after the test). */
async function startEcho(): Promise<number> {
  const server = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onTestFinished(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as net.AddressInfo).port;
}

/** Sends `text` through a TCP stream listener and resolves with what comes back. */
function echoThrough(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.end(text));
    let got = '';
    s.on('data', (c) => (got += c.toString()));
    s.on('close', () => resolve(got));
    s.on('error', reject);
  });
}

/**
 * The scenario, for one process (`workers: 1`: SIGUSR2 hands the sockets to a new process) or a
 * cluster (`workers: 2`: SIGUSR2 replaces the workers one by one under the same primary).
 */
async function scenario(workersN: number): Promise<void> {
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('hello');
  });
  const port = await freePort();
  const adminPort = await freePort();
  const streamPort = await freePort();
  const echoPort = await startEcho();
  const file = writeConfig(
    `workers: ${workersN}\nlisten:\n  - address: 127.0.0.1:${port}\nadmin: { address: 127.0.0.1:${adminPort} }\nreload: { watch: false }\n# cpu_ms is wall-clock: on a 2-core machine busy with this test, 50 ms can pass without the script running.\ntenants:\n  default: { cpu_ms: 2000, scripts: . }\nlog: { level: info, access_log: false }\nshared_dicts:\n  hits: { capacity: 10 }\nupstreams:\n  up:\n    targets: ["${origin.address}"]\n  echo:\n    targets: ["127.0.0.1:${echoPort}"]\nstreams:\n  - name: echo\n    address: 127.0.0.1:${streamPort}\n    upstream: echo\nroutes:\n  - name: r\n    upstream: up\n    header_filter_by_script: hf.ts\n    body_filter_by_script: bf.ts\n`,
    { 'hf.ts': headerScript('v0'), 'bf.ts': bodyScript('v0') },
  );
  const dir = path.dirname(file);
  const cli = spawnCli(file);
  const child = cli.child;
  const lineMatching = (msg: string) => cli.lines().find((l) => l.msg === msg);
  await cli.waitFor(() => lineMatching(workersN > 1 ? 'all workers listening' : 'admin listening') !== undefined);
  expect(await echoThrough(streamPort, 'before')).toBe('before');

  const admin = new Pool(`http://127.0.0.1:${adminPort}`);
  const proxy = new Pool(`http://127.0.0.1:${port}`, { connections: 8 });
  onTestFinished(async () => {
    await Promise.all([admin.close(), proxy.close()]);
  });

  // The load: 8 connections in a loop until told to stop (bounded by the test's own steps).
  let stop = false;
  let ok = 0;
  const failures: string[] = [];
  const versions = new Set<string>();
  const hits: number[] = []; // the shared-dict count each response saw
  const worker = async () => {
    while (!stop) {
      try {
        const res = await proxy.request({ path: '/', method: 'GET' });
        const body = await res.body.text();
        const v = String(res.headers['x-version']);
        hits.push(Number(res.headers['x-hits']));
        if (res.statusCode !== 200 || body !== `hello|${v}`) failures.push(`${res.statusCode} ${v} ${body}`);
        else ok++;
        versions.add(v);
      } catch (err) {
        failures.push(String((err as Error).message));
      }
    }
  };
  const workers = Array.from({ length: 8 }, worker);
  const t0 = Date.now();

  const reload = async () => {
    const res = await admin.request({ path: '/reload', method: 'POST' });
    return { status: res.statusCode, body: (await res.body.json()) as { ok: boolean; problems?: string[] } };
  };
  for (let i = 1; i <= 20; i++) {
    writeFileSync(path.join(dir, 'hf.ts'), headerScript(`v${i}`));
    writeFileSync(path.join(dir, 'bf.ts'), bodyScript(`v${i}`));
    const r = await reload();
    expect(r.status).toBe(200);
  }
  // A broken script: the reload is refused with file:line and v20 keeps serving.
  writeFileSync(path.join(dir, 'hf.ts'), `export default function (ctx: any) { ctx.response.headers.set('x-version', 'broken' }\n`);
  const broken = await reload();
  expect(broken.status).toBe(422);
  expect(broken.body.problems!.join('\n')).toMatch(/hf\.ts:1:/);
  writeFileSync(path.join(dir, 'hf.ts'), headerScript('v21'));
  writeFileSync(path.join(dir, 'bf.ts'), bodyScript('v21'));

  // Zero-downtime upgrade: a new process takes over the sockets and the old one drains, or (cluster)
  // each worker is replaced in turn.
  let successorPid = child.pid!;
  if (workersN === 1) {
    const exited = new Promise((r) => child.once('exit', r));
    process.kill(child.pid!, 'SIGUSR2');
    await cli.waitFor(() => lineMatching('upgrade: the new process is serving; draining and exiting') !== undefined);
    successorPid = lineMatching('upgrade: the new process is serving; draining and exiting')!.successor as number;
    await exited;
  } else {
    process.kill(child.pid!, 'SIGUSR2');
    await cli.waitFor(() => lineMatching('rolling restart done') !== undefined);
  }
  // The TCP stream listener was handed over too.
  expect(await echoThrough(streamPort, 'after')).toBe('after');
  // Keep the load on the new process for a moment, then stop.
  const before = ok;
  while (ok < before + 200) await new Promise((r) => setTimeout(r, 20));
  stop = true;
  await Promise.all(workers);
  const seconds = (Date.now() - t0) / 1000;

  // The deliberately broken reload is expected to log its refusal; nothing else may log an error.
  const errorLines = cli.lines().filter((l) => l.level === 'error' && l.msg !== 'reload failed; the running configuration keeps serving');
  expect({ failures, errorLines }).toEqual({ failures: [], errorLines: [] });
  expect(versions.has('broken')).toBe(false);
  // The shared-dict counter keeps counting across every reload and the upgrade, exactly: each
  // response got its own value and they are 1..ok (no reset, no lost update, no value twice, also
  // while the new process or worker opens the store under load).
  const highest = hits.reduce((a, b) => Math.max(a, b), 0);
  expect({ responses: hits.length, distinct: new Set(hits).size, highest }).toEqual({ responses: ok, distinct: ok, highest: ok });
  expect(versions.has('v0')).toBe(true);
  expect(versions.has('v21')).toBe(true); // served by the new process
  expect(ok).toBeGreaterThan(500);
  // The successor is the one answering now.
  const status = await admin.request({ path: '/status', method: 'GET' });
  expect(((await status.body.json()) as { pid: number }).pid).toBe(successorPid);
  console.log(`reload-under-load (workers: ${workersN}): ${ok} requests in ${seconds.toFixed(1)} s (${Math.round(ok / seconds)} req/s), ${versions.size} versions seen`);
}

describe('reload and restart under load', () => {
  it('one process: 20 reloads, a broken reload and a SIGUSR2 upgrade under load — no failed request, never a mixed or broken response', () => scenario(1), 60_000);
  it('a cluster of 2: the same, with a rolling restart of the workers', () => scenario(2), 90_000);
});
