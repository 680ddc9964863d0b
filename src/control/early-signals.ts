/**
 * Signals that arrive while scriptgate starts. bin/scriptgate.js listens for SIGHUP, SIGUSR1,
 * SIGUSR2 and SIGQUIT before anything loads, so that none of them does node's default (SIGUSR1
 * opening the inspector, the others ending the process); the proxy calls `endEarlySignals()` as it
 * installs its own handlers, which removes those listeners and logs what came in the meantime
 * (ignored: the configuration just loaded is the current one, and there is nothing to upgrade yet).
 * Without the launcher (tests, an embedding), there is nothing to end.
 */
import type { Logger } from 'pino';

interface EarlySignals {
  seen: string[];
  listener: (sig: string) => void;
}

export const EARLY_SIGNALS = ['SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGQUIT'] as const;

export function endEarlySignals(logger: Logger): void {
  const g = globalThis as { __scriptgateEarlySignals?: EarlySignals };
  const early = g.__scriptgateEarlySignals;
  if (!early) return;
  delete g.__scriptgateEarlySignals;
  for (const sig of EARLY_SIGNALS) process.off(sig, early.listener);
  if (early.seen.length) logger.warn({ signals: early.seen }, `signals received while starting were ignored: ${early.seen.join(', ')}`);
}
