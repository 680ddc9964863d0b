/**
 * examples/rate-limit as written (only its addresses changed): 5 requests per client IP per
 * 10-second window pass with x-ratelimit-remaining upstream; the 6th is a 429 with Retry-After and
 * never reaches the upstream.
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { ProxyServer } from '../../src/control/proxy-server.ts';
import { request, startOrigin } from '../helpers/servers.ts';

const EXAMPLE = fileURLToPath(new URL('../../examples/rate-limit/', import.meta.url));

describe('examples/rate-limit', () => {
  it('lets 5 requests per window through and answers the 6th with 429 and Retry-After', async () => {
    const origin = await startOrigin();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sg-example-rate-limit-'));
    cpSync(EXAMPLE, dir, { recursive: true });
    const file = path.join(dir, 'scriptgate.yaml');
    const yaml = readFileSync(file, 'utf8').replace('127.0.0.1:6188', '127.0.0.1:0').replace('127.0.0.1:9001', origin.address);
    writeFileSync(file, yaml);
    const server = await ProxyServer.start(parseConfig(yaml, file), pino({ level: 'silent' }));
    onTestFinished(() => server.shutdown(false));
    const port = server.ports[0]!;

    // The six requests must fall into one 10-second window: start early in one.
    const left = 10_000 - (Date.now() % 10_000);
    if (left < 4000) await new Promise((r) => setTimeout(r, left + 20));
    const statuses: number[] = [];
    const told: unknown[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await request(port, { path: `/r${i}` });
      statuses.push(r.status);
      told.push([r.headers['x-ratelimit-limit'], r.headers['x-ratelimit-remaining']]);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
    expect(origin.seen.map((r) => r.headers['x-ratelimit-remaining'])).toEqual(['4', '3', '2', '1', '0']);
    // The client is told too (header_filter), as Kong does.
    expect(told).toEqual([['5', '4'], ['5', '3'], ['5', '2'], ['5', '1'], ['5', '0']]);
    const limited = await request(port, { path: '/r5' });
    expect(limited.status).toBe(429);
    const retry = Number(limited.headers['retry-after']);
    expect(retry).toBeGreaterThanOrEqual(1);
    expect(retry).toBeLessThanOrEqual(10);
    expect(limited.text).toMatch(/rate limit of 5 requests per 10 s exceeded/);
    expect(origin.seen).toHaveLength(5);
  });
});
