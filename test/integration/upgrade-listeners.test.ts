/**
 * A SIGUSR2 upgrade hands listening sockets over by address, not by position: after the config's
 * `listen` list is reordered, each port keeps its own protocol (TLS stays TLS); an address the new
 * config adds is bound; one it drops is closed (nginx matches inherited sockets the same way).
 */
import https from 'node:https';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { makePki } from '../helpers/certs.ts';
import { request, startOrigin, writeConfig } from '../helpers/servers.ts';
import { freePort, spawnCli } from '../helpers/spawn-cli.ts';

function httpsGet(port: number, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/', servername: 'site.test', ca, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
  });
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

describe('zero-downtime upgrade (SIGUSR2)', () => {
  it('matches listening sockets by address: reordered listeners keep their protocol, a new one is bound, a dropped one is closed', async () => {
    const origin = await startOrigin();
    const pki = makePki();
    const leaf = pki.leaf('site', ['site.test']);
    const ca = (await import('node:fs')).readFileSync(pki.ca.cert, 'utf8');
    const [plain, secure, added] = [await freePort(), await freePort(), await freePort()];
    const tls = `    tls: { certificates: [{ cert: "${leaf.cert}", key: "${leaf.key}" }] }\n`;
    const config = (listen: string) => `listen:\n${listen}reload: { watch: false }\nlog: { level: info, access_log: false }\nupstreams:\n  up: { targets: ["${origin.address}"] }\nroutes:\n  - upstream: up\n`;
    const file = writeConfig(config(`  - address: 127.0.0.1:${plain}\n  - address: 127.0.0.1:${secure}\n${tls}`));
    const cli = spawnCli(file);
    await cli.waitFor((lines) => lines.some((l) => l.msg === 'scriptgate listening'));
    expect((await request(plain)).status).toBe(200);
    expect(await httpsGet(secure, ca)).toBe(200);

    // The TLS listener first now, the plain one gone, a new plain one added.
    writeFileSync(file, config(`  - address: 127.0.0.1:${secure}\n${tls}  - address: 127.0.0.1:${added}\n`));
    process.kill(cli.child.pid!, 'SIGUSR2');
    await cli.waitFor((lines) => lines.some((l) => l.msg === 'upgrade: the new process is serving; draining and exiting'));
    await cli.exited;
    expect(await httpsGet(secure, ca)).toBe(200);
    expect((await request(added)).status).toBe(200);
    expect(await refused(plain)).toBe(true);
  });
});
