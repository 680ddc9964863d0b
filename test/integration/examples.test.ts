/**
 * Every example in examples/ runs here as written, with only its addresses changed: the listener
 * moves to port 0 and the 127.0.0.1:900N targets to origins started by the test.
 */
import { createHmac } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { ProxyServer } from '../../src/control/proxy-server.ts';
import { startDemoOrigin } from '../../src/cli/demo-origins.ts';
import { request, startOrigin } from '../helpers/servers.ts';

const EXAMPLES = fileURLToPath(new URL('../../examples/', import.meta.url));

/** Starts an example with its targets replaced by `origins`; `lines` collects its log lines. */
async function startExample(name: string, origins: Array<{ port: number }>) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `sg-example-${name}-`));
  cpSync(path.join(EXAMPLES, name), dir, { recursive: true });
  const file = path.join(dir, 'scriptgate.yaml');
  let yaml = readFileSync(file, 'utf8').replace(/127\.0\.0\.1:6188/g, '127.0.0.1:0');
  origins.forEach((o, i) => (yaml = yaml.replaceAll(`127.0.0.1:${9001 + i}`, `127.0.0.1:${o.port}`)));
  writeFileSync(file, yaml);
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
      for (const w of waiters.splice(0)) w();
      cb();
    },
  });
  /** Resolves with the first log line matching `pred`, waiting for new lines as they are written. */
  const waitForLine = async (pred: (l: Record<string, unknown>) => boolean) => {
    for (;;) {
      const found = lines.find(pred);
      if (found) return found;
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  const logger = pino({ level: 'info' }, sink);
  const server = await ProxyServer.start(parseConfig(yaml, file), logger);
  onTestFinished(() => server.shutdown(false));
  return { port: server.ports[0]!, lines, waitForLine };
}

describe('examples', () => {
  it('load-balancer: the script sets Host one.one.one.one, round-robin over both origins', async () => {
    const a = await startDemoOrigin('origin-1');
    const b = await startDemoOrigin('origin-2');
    onTestFinished(() => new Promise<void>((r) => a.server.close(() => r())));
    onTestFinished(() => new Promise<void>((r) => b.server.close(() => r())));
    // Without the proxy the origins refuse a foreign Host.
    const direct = await request(a.port, { host: 'example.com' });
    expect(direct.status).toBe(403);
    const { port } = await startExample('load-balancer', [a, b]);
    const first = await request(port);
    const second = await request(port);
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect([first.headers['x-origin'], second.headers['x-origin']].sort()).toEqual(['origin-1', 'origin-2']);
    expect(first.text).toContain('Host one.one.one.one');
  });

  it('auth: 401 without a valid token, upstream untouched; a valid token reaches upstream as x-user', async () => {
    const origin = await startOrigin();
    const { port } = await startExample('auth', [origin]);
    const missing = await request(port, { path: '/api/x' });
    expect(missing.status).toBe(401);
    expect(missing.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(missing.text).toBe('missing token\n');
    const wrong = await request(port, { path: '/api/x', headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    expect(origin.seen).toHaveLength(0);
    const ok = await request(port, { path: '/api/x', headers: { authorization: 'Bearer token-alice', 'x-user': 'mallory' } });
    expect(ok.status).toBe(200);
    expect(origin.seen).toHaveLength(1);
    expect(origin.seen[0]!.headers['x-user']).toBe('alice');
    expect(origin.seen[0]!.headers.authorization).toBeUndefined();
  });

  it('webhook-signature: a delivery signed with the secret reaches the upstream byte for byte; unsigned, forged or altered ones get 401', async () => {
    const origin = await startOrigin();
    const { port, waitForLine } = await startExample('webhook-signature', [origin]);
    const body = JSON.stringify({ action: 'opened', pull_request: { title: 'Grüße' } });
    const sign = (b: string) => `sha256=${createHmac('sha256', 'It’s a Secret to Everybody').update(b).digest('hex')}`;
    const ok = await request(port, { method: 'POST', path: '/hooks/github', body, headers: { 'x-hub-signature-256': sign(body), 'x-github-event': 'pull_request' } });
    expect(ok.status).toBe(200);
    expect(origin.seen).toHaveLength(1);
    expect(origin.seen[0]!.body.toString()).toBe(body);
    expect(origin.seen[0]!.headers['x-webhook-verified']).toBe('1');
    const missing = await request(port, { method: 'POST', path: '/hooks/github', body });
    expect([missing.status, missing.text]).toEqual([401, 'missing X-Hub-Signature-256\n']);
    const altered = await request(port, { method: 'POST', path: '/hooks/github', body: body.replace('opened', 'closed'), headers: { 'x-hub-signature-256': sign(body), 'x-github-event': 'pull_request' } });
    expect([altered.status, altered.text]).toEqual([401, 'bad signature\n']);
    expect(await waitForLine((l) => l.msg === 'webhook signature mismatch')).toMatchObject({ event: 'pull_request', bytes: Buffer.byteLength(body) });
    expect((await request(port, { method: 'POST', path: '/hooks/github', body: 'x'.repeat(1024 * 1024 + 1), headers: { 'x-hub-signature-256': sign('x') } })).status).toBe(413);
    expect(origin.seen).toHaveLength(1);
  });

  it('headers: security headers added, Server and X-Powered-By removed, upstream choices kept', async () => {
    const origin = await startOrigin((_req, res) => {
      res.setHeader('server', 'Apache/2.4.1');
      res.setHeader('x-powered-by', 'PHP/5.6');
      res.setHeader('x-frame-options', 'SAMEORIGIN');
      res.end('page');
    });
    const { port } = await startExample('headers', [origin]);
    const res = await request(port);
    expect(res.status).toBe(200);
    expect(res.text).toBe('page');
    expect(res.headers.server).toBeUndefined();
    expect(res.headers['x-powered-by']).toBeUndefined();
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['strict-transport-security']).toContain('max-age=');
    expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
  });

  it('body-rewrite: replaces across chunk boundaries, streamed and chunked', async () => {
    const parts = ['see http://old.exa', 'mple.com and http://old.example.com/x ', 'h', 'ttp://old.example.co', 'm. end http://old'];
    const origin = await startOrigin(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(parts.join('')) });
      for (const p of parts) {
        res.write(p);
        await new Promise((r) => setImmediate(r));
      }
      res.end();
    });
    const { port } = await startExample('body-rewrite', [origin]);
    const res = await request(port);
    expect(res.status).toBe(200);
    expect(res.text).toBe(parts.join('').replaceAll('http://old.example.com', 'https://new.example.com'));
    expect(res.headers['content-length']).toBeUndefined();
    expect(res.headers['transfer-encoding']).toBe('chunked');
  });

  it('access-log: one custom structured line per request, with vars from access', async () => {
    const origin = await startOrigin();
    const { port, lines, waitForLine } = await startExample('access-log', [origin]);
    const res = await request(port, { path: '/things?id=1', headers: { 'x-plan': 'pro' } });
    expect(res.status).toBe(200);
    const line = await waitForLine((l) => l.msg === 'request done');
    expect(line).toMatchObject({ method: 'GET', path: '/things', status: 200, plan: 'pro', upstream: origin.address, route: 'api' });
    expect(typeof line!.totalMs).toBe('number');
    expect(lines.filter((l) => l.msg === 'access')).toHaveLength(0);
  });
});
