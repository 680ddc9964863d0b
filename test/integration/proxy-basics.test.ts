import { describe, expect, it } from 'vitest';
import { request, simpleConfig, startOrigin, startProxy } from '../helpers/servers.ts';

describe('HTTP/1.1 proxying', () => {
  it('forwards a GET and returns the origin response', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(simpleConfig([origin]));
    const res = await request(port, { path: '/hello?x=1' });
    expect(res.status).toBe(200);
    expect(res.text).toBe('origin:o GET /hello?x=1');
    expect(origin.seen[0]!.headers['x-forwarded-for']).toBe('127.0.0.1');
  });
});
