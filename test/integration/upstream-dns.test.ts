import { describe, expect, it } from 'vitest';
import { request, startOrigin, startProxy } from '../helpers/servers.ts';

describe('DNS names as upstream targets', () => {
  it('a localhost:PORT target is resolved and served; /status shows the address it resolved to', async () => {
    const o = await startOrigin(undefined, 'o');
    const yaml = `listen:\n  - address: 127.0.0.1:0\nlog: { level: silent }\nupstreams:\n  up:\n    targets: ["localhost:${o.port}"]\n    dns: { interval: 1s, family: 4 }\nroutes:\n  - upstream: up\n`;
    const { port, server } = await startProxy(yaml);
    const res = await request(port, { path: '/hello' });
    expect(res.status).toBe(200);
    expect(res.text).toBe('origin:o GET /hello');
    expect(server.generation.upstreams.get('up')!.status().targets).toEqual([expect.objectContaining({ address: `127.0.0.1:${o.port}`, target: `localhost:${o.port}`, healthy: true })]);
  });

  it('a name that does not resolve gives 503, not a crash', async () => {
    const yaml = `listen:\n  - address: 127.0.0.1:0\nlog: { level: silent }\nupstreams:\n  up:\n    targets: ["nonexistent.invalid:80"]\nroutes:\n  - upstream: up\n`;
    const { port } = await startProxy(yaml);
    expect((await request(port)).status).toBe(503);
  });
});
