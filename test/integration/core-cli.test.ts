/**
 * The `scriptgate` command as a user runs it: a spawned `node --no-node-snapshot bin/scriptgate.js`
 * with a temp config, talking to origins on loopback. Every child is killed by its PID after the test.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { rawRequest, request, startOrigin, statusOf, writeConfig, type Origin } from '../helpers/servers.ts';
import { freePort, runCli, type SpawnedCli } from '../helpers/spawn-cli.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const VERSION = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

type Cli = SpawnedCli;
const cli = runCli;

function proxyConfig(port: number, origin: Origin, workers = 1, dead = 1): string {
  return `workers: ${workers}\nlisten:\n  - address: 127.0.0.1:${port}\nupstreams:\n  up: { targets: ["${origin.address}"] }\n  dead: { targets: ["127.0.0.1:${dead}"] }\nroutes:\n  - name: main\n    match: { path_prefix: /, methods: [GET, HEAD, POST] }\n    upstream: up\n  - name: broken\n    match: { path_prefix: /dead/ }\n    upstream: dead\n`;
}

const msg = (m: string) => (lines: Array<Record<string, unknown>>) => lines.some((l) => l.msg === m);
const accessLines = (c: Cli) => c.lines().filter((l) => l.msg === 'access');

/** Starts `scriptgate start` and waits for its listening line. */
async function startCli(origin: Origin, workers = 1, env: Record<string, string> = {}, dead = 1) {
  const port = await freePort();
  const file = writeConfig(proxyConfig(port, origin, workers, dead));
  const c = cli(['start', '-c', file], env);
  await c.waitFor(msg(workers > 1 ? 'all workers listening' : 'scriptgate listening'));
  return { c, port };
}

// Spawning node + tsx costs seconds on a loaded machine: these tests get a larger (still finite) bound.
describe('scriptgate CLI', { timeout: 60_000 }, () => {
  it('--version prints the package version', async () => {
    const c = cli(['--version']);
    const { code } = await c.exited;
    expect(code).toBe(0);
    expect(c.stdout().trim()).toBe(`scriptgate ${VERSION}`);
  });

  it('--help prints usage with every command', async () => {
    const c = cli(['--help']);
    const { code } = await c.exited;
    expect(code).toBe(0);
    for (const word of ['start', 'check', '--version', '--help', 'SIGTERM']) expect(c.stdout()).toContain(word);
  });

  it('check -c good.yaml exits 0', async () => {
    const origin = await startOrigin();
    const file = writeConfig(proxyConfig(6188, origin));
    const c = cli(['check', '-c', file]);
    const { code } = await c.exited;
    expect(c.stderr()).toBe('');
    expect(code).toBe(0);
    expect(c.stdout()).toContain('test is successful');
  });

  it('check -c bad.yaml exits 1 with one file:line: line per problem on stderr', async () => {
    const file = writeConfig('listen:\n  - address: 127.0.0.1:6188\nupstreams:\n  up: { targets: ["127.0.0.1:1"], timeouts: { read: soon } }\nroutes:\n  - upstream: ghost\n    bogus: 1\n');
    const c = cli(['check', '-c', file]);
    const { code } = await c.exited;
    expect(code).toBe(1);
    const lines = c.stderr().trim().split('\n');
    expect(lines).toHaveLength(3);
    for (const l of lines) expect(l.startsWith(`${file}:`), l).toBe(true);
    expect(lines[0]).toMatch(/:4: upstreams\.up\.timeouts\.read: invalid duration "soon"/);
    expect(lines.join('\n')).toMatch(/:6: routes\[0\]\.upstream: unknown upstream "ghost"/);
    expect(lines.join('\n')).toMatch(/:7: routes\[0\]: .*bogus/);
  });

  it('start -c bad.yaml exits 1 with its file:line: problem on stderr', async () => {
    const file = writeConfig('listen:\n  - address: 127.0.0.1:6188\nroutes:\n  - upstream: ghost\n');
    const c = cli(['start', '-c', file]);
    const { code } = await c.exited;
    expect(code).toBe(1);
    expect(c.stderr().trim()).toBe(`${file}:4: routes[0].upstream: unknown upstream "ghost"`);
  });

  // One cluster serves both checks: spawning one costs seconds.
  it('start with workers: 2 serves from two worker pids; SIGTERM lets an in-flight slow request finish with 200, then exits 0', async () => {
    let arrived!: () => void;
    const inFlight = new Promise<void>((r) => (arrived = r));
    const origin = await startOrigin((req, res) => {
      if (req.url !== '/slow') return res.end('ok');
      arrived();
      setTimeout(() => res.end('slow but whole'), 300);
    });
    const { c, port } = await startCli(origin, 2);
    const pids = () => new Set(accessLines(c).map((l) => l.pid));
    let sent = 0;
    for (let batch = 0; batch < 20 && pids().size < 2; batch++) {
      const results = await Promise.all(Array.from({ length: 16 }, (_, i) => request(port, { path: `/b${batch}/${i}` })));
      for (const r of results) expect(r.status).toBe(200);
      sent += results.length;
      await c.waitFor(() => accessLines(c).length >= sent, 5000);
    }
    expect(pids().size).toBe(2);
    expect(pids().has(c.child.pid)).toBe(false);

    const pending = request(port, { path: '/slow' });
    await inFlight;
    const t0 = Date.now();
    process.kill(c.child.pid!, 'SIGTERM');
    const res = await pending;
    expect(res.status).toBe(200);
    expect(res.text).toBe('slow but whole');
    const { code, at } = await c.exited;
    expect(code).toBe(0);
    expect(at - t0).toBeLessThan(10_000);
    await expect(request(port)).rejects.toThrow(/ECONNREFUSED|ECONNRESET/);
  });

  it('LOG_LEVEL=warn silences info lines but not the access log (as nginx: access_log is not error_log); SIGINT exits promptly even with a request in flight', async () => {
    let arrived!: () => void;
    const inFlight = new Promise<void>((r) => (arrived = r));
    const origin = await startOrigin((req, res) => {
      if (req.url === '/stuck') return arrived(); // never answers
      res.end('ok');
    });
    const port = await freePort();
    const c = cli(['start', '-c', writeConfig(proxyConfig(port, origin))], { LOG_LEVEL: 'warn' });
    // No info line announces readiness at warn: poll the port (bounded).
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ok = await new Promise<boolean>((r) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.destroy();
          r(true);
        });
        s.on('error', () => r(false));
      });
      if (ok) break;
      if (Date.now() > deadline || c.child.exitCode !== null) throw new Error(`scriptgate did not listen in time: ${c.stderr()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect((await request(port)).status).toBe(200);
    const pending = request(port, { path: '/stuck' }).catch((e: Error) => e);
    await inFlight;
    const t0 = Date.now();
    process.kill(c.child.pid!, 'SIGINT');
    const { at } = await c.exited;
    expect(at - t0).toBeLessThan(1500);
    expect(await pending).toBeInstanceOf(Error);
    expect(accessLines(c).filter((l) => l.path === '/')).toHaveLength(1);
    expect(c.stdout()).not.toContain('scriptgate listening');
  });

  it('shutdown_timeout bounds a graceful stop: a request still running after it is cut, with a warning, and the process exits 0', async () => {
    let arrived!: () => void;
    const inFlight = new Promise<void>((r) => (arrived = r));
    const origin = await startOrigin(() => arrived()); // never answers
    const port = await freePort();
    const c = cli(['start', '-c', writeConfig(`shutdown_timeout: 300ms\n${proxyConfig(port, origin)}`)]);
    await c.waitFor(msg('scriptgate listening'));
    const pending = request(port, { path: '/stuck' }).catch((e: Error) => e);
    await inFlight;
    const t0 = Date.now();
    process.kill(c.child.pid!, 'SIGTERM');
    const { code, at } = await c.exited;
    expect(code).toBe(0);
    expect(at - t0).toBeGreaterThanOrEqual(250);
    expect(at - t0).toBeLessThan(5000);
    expect(await pending).toBeInstanceOf(Error);
    expect(c.lines().some((l) => l.msg === 'shutdown_timeout passed; cutting the connections still open')).toBe(true);
  });

  it('started as `node bin/scriptgate.js` (the launcher re-runs node with --no-node-snapshot), SIGQUIT reaches the proxy: it drains and both exit', async () => {
    const origin = await startOrigin();
    const port = await freePort();
    const launcher = spawn(process.execPath, [path.join(ROOT, 'bin/scriptgate.js'), 'start', '-c', writeConfig(proxyConfig(port, origin))], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((r) => launcher.once('exit', (code) => r(code)));
    onTestFinished(() => {
      if (launcher.exitCode === null) launcher.kill('SIGKILL');
    });
    let out = '';
    await new Promise<void>((resolve, reject) => {
      launcher.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('scriptgate listening')) resolve();
      });
      launcher.once('exit', () => reject(new Error(`exited before listening: ${out}`)));
    });
    expect((await request(port)).status).toBe(200);
    launcher.kill('SIGQUIT');
    expect(await exited).toBe(0);
    const refused = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(false)));
      s.once('error', () => resolve(true));
    });
    expect(refused).toBe(true);
  });

  it('SIGUSR1, SIGHUP and SIGQUIT while it starts neither open the inspector nor end it: they are logged as ignored, and it comes up', async () => {
    const origin = await startOrigin();
    const port = await freePort();
    const c = cli(['start', '-c', writeConfig(proxyConfig(port, origin))]);
    // The launcher's first lines catch these signals; wait until the kernel says SIGHUP is caught
    // (SigCgt in /proc, bit 0; node catches SIGUSR1 natively from the start, for its inspector),
    // still long before the proxy is ready.
    const caught = () => {
      const line = readFileSync(`/proc/${c.child.pid}/status`, 'utf8').match(/^SigCgt:\s*([0-9a-f]+)$/m);
      return line !== null && (BigInt(`0x${line[1]}`) & 1n) !== 0n;
    };
    const deadline = Date.now() + 30_000;
    while (!caught()) {
      if (Date.now() > deadline || c.child.exitCode !== null) throw new Error(`no SIGHUP handler came up: ${c.stderr()}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    for (const sig of ['SIGUSR1', 'SIGHUP', 'SIGQUIT'] as const) process.kill(c.child.pid!, sig);
    await c.waitFor(msg('scriptgate listening'));
    expect((await request(port)).status).toBe(200);
    expect(c.stderr()).not.toMatch(/Debugger listening/);
    const warn = c.lines().find((l) => String(l.msg).startsWith('signals received while starting were ignored'));
    expect([...((warn?.signals as string[] | undefined) ?? [])].sort()).toEqual(['SIGHUP', 'SIGQUIT', 'SIGUSR1']);
    // Once up, SIGQUIT is nginx's graceful stop.
    process.kill(c.child.pid!, 'SIGQUIT');
    expect((await c.exited).code).toBe(0);
  });
});

describe('access log', { timeout: 60_000 }, () => {
  it('one JSON line per request (pid, method, path, status, bytes, ms, route, upstream, reqId = the x-request-id the origin saw), 404 and 502 included; SIGTERM with a slow request in flight (workers: 1) completes it and exits 0', async () => {
    let arrived!: () => void;
    const inFlight = new Promise<void>((r) => (arrived = r));
    const origin = await startOrigin((req, res, body) => {
      if (req.url === '/slow') {
        arrived();
        return void setTimeout(() => res.end('slow but whole'), 300);
      }
      res.end(`seen ${req.method} ${req.url} ${body.length}`);
    });
    const dead = await freePort();
    const { c, port } = await startCli(origin, 1, {}, dead);
    const sent: Array<{ method: string; path: string; status: number; bytes: number }> = [];
    for (const [method, p] of [['GET', '/a?x=1'], ['POST', '/b'], ['GET', '/c']] as const) {
      const res = await request(port, { method, path: p, ...(method === 'POST' ? { body: 'data' } : {}) });
      sent.push({ method, path: p, status: res.status, bytes: res.body.length });
    }
    // A request with its own valid x-request-id keeps it.
    await request(port, { path: '/d', headers: { 'x-request-id': 'client-chosen-id-1' } });
    expect((await request(port, { path: '/nothing/x', method: 'DELETE' })).status).toBe(404);
    expect((await request(port, { path: '/dead/x' })).status).toBe(502);
    await c.waitFor(() => accessLines(c).length >= 6, 5000);
    const lines = accessLines(c);
    expect(lines).toHaveLength(6);
    for (let i = 0; i < 3; i++) {
      const l = lines[i]!;
      expect(l).toMatchObject({ pid: c.child.pid, method: sent[i]!.method, path: sent[i]!.path, status: 200, bytes: sent[i]!.bytes, route: 'main', upstream: origin.address });
      expect(typeof l.ms).toBe('number');
      expect(typeof l.reqId).toBe('string');
      expect(l.reqId).toBe(origin.seen[i]!.headers['x-request-id']);
    }
    expect(lines[3]!.reqId).toBe('client-chosen-id-1');
    expect(origin.seen[3]!.headers['x-request-id']).toBe('client-chosen-id-1');
    expect(lines[4]).toMatchObject({ method: 'DELETE', path: '/nothing/x', status: 404 });
    expect(lines[4]!.upstream).toBeUndefined();
    expect(lines[5]).toMatchObject({ path: '/dead/x', status: 502, route: 'broken', upstream: `127.0.0.1:${dead}` });
    expect(new Set(lines.map((l) => l.reqId)).size).toBe(6);

    const pending = request(port, { path: '/slow' });
    await inFlight;
    process.kill(c.child.pid!, 'SIGTERM');
    const res = await pending;
    expect(res.status).toBe(200);
    expect(res.text).toBe('slow but whole');
    expect((await c.exited).code).toBe(0);
    expect(accessLines(c).at(-1)).toMatchObject({ path: '/slow', status: 200 });
  });

  it('SIGUSR1 reopens the access-log file after logrotate moved it; requests refused before routing (505, a malformed head) are logged too', async () => {
    const origin = await startOrigin();
    const port = await freePort();
    const file = writeConfig(proxyConfig(port, origin).replace('listen:', 'log: { access_log: { file: logs/access.log } }\nlisten:'));
    const log = path.join(path.dirname(file), 'logs/access.log');
    const c = cli(['start', '-c', file]);
    onTestFinished(() => void c.child.kill('SIGKILL'));
    await c.waitFor(msg('scriptgate listening'));
    const linesOf = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) : []);
    const until = async (pred: () => boolean) => {
      for (const deadline = Date.now() + 10_000; !pred(); await new Promise((r) => setTimeout(r, 50))) if (Date.now() > deadline) throw new Error('timed out');
    };
    expect((await request(port, { path: '/one' })).status).toBe(200);
    await until(() => linesOf(log).length === 1);
    renameSync(log, `${log}.1`);
    process.kill(c.child.pid!, 'SIGUSR1');
    await until(() => existsSync(log));
    expect((await request(port, { path: '/two' })).status).toBe(200);
    expect(statusOf((await rawRequest(port, 'GET /v HTTP/2.0\r\nHost: a\r\n\r\n')).text)).toBe(505);
    expect(statusOf((await rawRequest(port, 'GET /bad HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n')).text)).toBe(400);
    await until(() => linesOf(log).length === 3);
    expect(linesOf(`${log}.1`).map((l) => l.path)).toEqual(['/one']);
    expect(linesOf(log).map((l) => [l.path, l.status, l.error])).toEqual([
      ['/two', 200, undefined],
      ['/v', 505, 'PRX_ERR_VERSION_NOT_SUPPORTED'],
      ['/bad', 400, 'PRX_ERR_BAD_REQUEST'],
    ]);
  });

  it('an access-log file that cannot be opened fails check and start as file:line; a request drained at SIGTERM before the file was first written still gets its line', async () => {
    const origin = await startOrigin((_req, res) => setTimeout(() => res.end('slow'), 300));
    const port = await freePort();
    const bad = writeConfig(proxyConfig(port, origin).replace('listen:', 'log: { access_log: { file: /proc/nope/access.log } }\nlisten:'));
    const checked = cli(['check', '-c', bad]);
    expect((await checked.exited).code).toBe(1);
    expect(checked.stderr()).toMatch(/scriptgate\.yaml:2: log\.access_log\.file: cannot open \/proc\/nope\/access\.log for appending/);
    const file = writeConfig(proxyConfig(port, origin).replace('listen:', 'log: { access_log: { file: logs/access.log } }\nlisten:'));
    const log = path.join(path.dirname(file), 'logs/access.log');
    const c = cli(['start', '-c', file]);
    onTestFinished(() => void c.child.kill('SIGKILL'));
    await c.waitFor(msg('scriptgate listening'));
    // The first request of the process is in flight when SIGTERM comes: its line is the file's first.
    const answer = request(port, { path: '/drained' });
    await new Promise((r) => setTimeout(r, 100));
    process.kill(c.child.pid!, 'SIGTERM');
    expect((await answer).status).toBe(200);
    expect((await c.exited).code).toBe(0);
    expect(c.stderr()).not.toMatch(/sonic boom/);
    expect(readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { path: string }).path)).toEqual(['/drained']);
  });

  it('a LOG_LEVEL that is not a level is one clear line, not a stack trace', async () => {
    const origin = await startOrigin();
    const c = cli(['start', '-c', writeConfig(proxyConfig(await freePort(), origin))], { LOG_LEVEL: 'bogus' });
    expect((await c.exited).code).toBe(1);
    expect(c.stderr().trim()).toBe('scriptgate: cannot start: LOG_LEVEL "bogus" is not a log level (fatal, error, warn, info, debug, trace, silent)');
  });

  it('check reports every problem at once: an unset from_env variable, a missing script and a certificate that does not load', async () => {
    const file = writeConfig(`listen:
  - address: 127.0.0.1:6188
    tls: { certificates: [{ cert: missing.pem, key: missing.key }] }
tenants:
  default: { scripts: ., env: { KEY: { from_env: SG_TEST_SURELY_UNSET } } }
upstreams:
  up: { targets: ["127.0.0.1:9"] }
routes:
  - upstream: up
    access_by_script: nowhere.ts
`);
    const c = cli(['check', '-c', file]);
    expect((await c.exited).code).toBe(1);
    const err = c.stderr();
    expect(err).toMatch(/scriptgate\.yaml:5: tenants\.default\.env\.KEY: environment variable SG_TEST_SURELY_UNSET is not set/);
    expect(err).toMatch(/scriptgate\.yaml:\d+: routes\[0\]\.access_by_script: script not found/);
    expect(err).toMatch(/scriptgate\.yaml:3: listen\[0\]\.tls\.certificates\[0\]\.cert: cannot read .*missing\.pem: ENOENT/);
    expect(err).toMatch(/scriptgate\.yaml:3: listen\[0\]\.tls\.certificates\[0\]\.key: cannot read .*missing\.key: ENOENT/);
    expect(err.match(/missing\.pem/g)).toHaveLength(1);
  });
});
