/**
 * `scriptgate demo` (what `npm start` runs): starts the two demo origins of
 * examples/load-balancer on the ports its config names, then the proxy with that config on
 * 127.0.0.1:6188. Try `curl -sv 127.0.0.1:6188/`.
 */
import { fromRoot } from '../package-root.ts';
import { loadConfig } from '../config/load.ts';
import { startDemoOrigin } from './demo-origins.ts';
import { start } from './main.ts';
import { parseHostPort } from '../config/units.ts';

export const DEMO_CONFIG = fromRoot('examples', 'load-balancer', 'scriptgate.yaml');

export async function runDemo(): Promise<void> {
  const { config } = await loadConfig(DEMO_CONFIG);
  const targets = Object.values(config.upstreams).flatMap((u) => u.targets);
  await Promise.all(targets.map((t, i) => startDemoOrigin(`origin-${i + 1}`, parseHostPort(t.address)!.port)));
  process.stderr.write(
    `scriptgate demo: origins on ${targets.map((t) => t.address).join(', ')} answer 403 unless Host is one.one.one.one;\n` +
      `the proxy on ${config.listen[0]!.address} balances between them and sets that Host. Try: curl -sv http://${config.listen[0]!.address}/\n`,
  );
  await start(DEMO_CONFIG);
}
