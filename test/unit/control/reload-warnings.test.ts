/**
 * A reload cannot move a listener: its answer warns about it on every reload until a restart
 * (compared with what is bound, not with the previous generation, which a file-watch reload may
 * already have replaced).
 */
import { writeFileSync } from 'node:fs';
import pino from 'pino';
import { expect, it, onTestFinished } from 'vitest';
import { loadConfig } from '../../../src/config/load.ts';
import { ProxyServer } from '../../../src/control/proxy-server.ts';
import { createReloader } from '../../../src/control/reload.ts';
import { writeConfig } from '../../helpers/servers.ts';

const yaml = (address: string) => `listen:\n  - address: ${address}\nreload: { watch: false }\nlog: { level: silent }\nupstreams:\n  up: { targets: ["127.0.0.1:9"] }\nroutes:\n  - upstream: up\n`;

it('a moved listener is warned about on every reload until a restart', async () => {
  const file = writeConfig(yaml('127.0.0.1:0'));
  const logger = pino({ level: 'silent' });
  const server = await ProxyServer.start(await loadConfig(file), logger);
  onTestFinished(() => server.shutdown(false));
  const reload = createReloader(server, file, logger);
  const first = await reload();
  expect(first.ok && first.warnings).toEqual([]);
  writeFileSync(file, yaml('127.0.0.1:1'));
  for (let i = 0; i < 2; i++) {
    const r = await reload();
    if (!r.ok) throw new Error(r.problems.join('\n'));
    expect(r.warnings.join()).toMatch(/listen: listener changes take effect on restart/);
  }
});
