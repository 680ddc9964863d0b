/**
 * Zero-downtime upgrade of a single-process scriptgate (nginx's USR2, Pingora's graceful upgrade):
 * on SIGUSR2 the running process starts a new one from the code now on disk, with the same
 * arguments, and hands it its listening sockets over IPC. Once the new process accepts on them the
 * old one stops accepting, finishes its in-flight requests and exits; no connection is refused
 * because the sockets never close. If the new process fails to start, the old one keeps serving.
 * Sockets are matched by the address the config gives them (as nginx matches inherited sockets),
 * not by position: a reordered `listen` list keeps each port's protocol, a new address is bound
 * afresh, and one the new config no longer has is closed (ProxyServer.start).
 * (A cluster instead replaces its workers one by one: see cluster.ts.)
 */
import { spawn } from 'node:child_process';
import type { Server } from 'node:net';
import type { Logger } from 'pino';

export const UPGRADE_ENV = 'SCRIPTGATE_UPGRADE';
/** The instance a successor continues (its shared-dict store, src/sandbox/shared-store.ts): the first process's pid. */
export const INSTANCE_ENV = 'SCRIPTGATE_INSTANCE';

interface HandleMessage {
  type: 'scriptgate:handle';
  kind: 'listener' | 'admin';
  /** The listener's key (`listenerKey`); '' for the admin socket. */
  key: string;
}

/** What a listening socket is known by across an upgrade: its kind and its configured address. */
export function listenerKey(kind: 'http' | 'stream', address: string): string {
  return `${kind} ${address}`;
}

/**
 * Old side. Starts the successor (with `env` added to this process's environment) and hands it
 * `listeners` (each with its `listenerKey`) and `admin`. Resolves true once the successor is listening (the caller then drains and exits), false
 * if it failed.
 */
export function handOver(listeners: ReadonlyArray<{ key: string; server: Server }>, admin: Server | undefined, logger: Logger, env: Record<string, string> = {}): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...process.argv.slice(2)], {
      stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
      // The successor continues this instance: same shared-dict store.
      env: { ...process.env, ...env, [UPGRADE_ENV]: '1', [INSTANCE_ENV]: process.env[INSTANCE_ENV] ?? String(process.pid) },
    });
    logger.info({ successor: child.pid }, 'upgrade: started the new process; handing over listening sockets');
    let settled = false;
    const settle = (ok: boolean) => {
      if (settled) return;
      settled = true;
      resolve(ok);
    };
    child.on('message', (msg: { type?: string }) => {
      if (msg?.type === 'scriptgate:upgrade-ready') {
        for (const { key, server } of listeners) child.send({ type: 'scriptgate:handle', kind: 'listener', key } satisfies HandleMessage, server);
        if (admin) child.send({ type: 'scriptgate:handle', kind: 'admin', key: '' } satisfies HandleMessage, admin);
        child.send({ type: 'scriptgate:handles-done' });
      } else if (msg?.type === 'scriptgate:listening') {
        logger.info({ successor: child.pid }, 'upgrade: the new process is serving; draining and exiting');
        child.disconnect();
        child.unref();
        settle(true);
      }
    });
    child.on('exit', (code, signal) => {
      if (!settled) logger.error({ code, signal }, 'upgrade: the new process exited before serving; this process keeps serving');
      settle(false);
    });
  });
}

/** New side: when started by `handOver`, receives the listening sockets by key; otherwise resolves empty. */
export function receiveHandles(): Promise<{ listeners: Map<string, Server>; admin?: Server }> {
  if (!process.env[UPGRADE_ENV] || !process.send) return Promise.resolve({ listeners: new Map() });
  delete process.env[UPGRADE_ENV];
  return new Promise((resolve) => {
    const listeners = new Map<string, Server>();
    let admin: Server | undefined;
    const onMessage = (msg: HandleMessage | { type: string }, handle?: Server) => {
      if (msg.type === 'scriptgate:handle' && handle) {
        const m = msg as HandleMessage;
        if (m.kind === 'listener') listeners.set(m.key, handle);
        else admin = handle;
      } else if (msg.type === 'scriptgate:handles-done') {
        done({ listeners, admin });
      }
    };
    // The old process went away before handing over: bind the addresses afresh.
    const onDisconnect = () => done({ listeners: new Map() });
    const done = (result: { listeners: Map<string, Server>; admin?: Server }) => {
      process.off('message', onMessage);
      process.off('disconnect', onDisconnect);
      resolve(result);
    };
    process.on('message', onMessage);
    process.on('disconnect', onDisconnect);
    process.send!({ type: 'scriptgate:upgrade-ready' }, undefined, {}, (err) => {
      if (err) onDisconnect();
    });
  });
}
