/**
 * Request/reply over the cluster's IPC channel, for the admin API in a cluster primary: the primary
 * `askWorkers(kind)` and every live worker answers with what its `answerPrimary(kind, fn)` handler
 * returns. Used for `/metrics` (each worker's prom-client JSON), `/status` and `/status/errors`.
 * Resolves once every worker answered or after `timeoutMs` (default 3 s) with the answers so far,
 * so a stuck worker never hangs the admin API. A worker whose handler throws answers nothing.
 *
 * @example
 *   // worker:  answerPrimary('status', () => localStatus());
 *   // primary: const all = await askWorkers<Status>('status');
 */
import cluster, { type Worker } from 'node:cluster';

interface Ask {
  type: 'scriptgate:ask';
  id: number;
  kind: string;
}
interface Answer {
  type: 'scriptgate:answer';
  id: number;
  ok: boolean;
  value?: unknown;
}

/** One worker's answer. */
export interface WorkerAnswer<T> {
  worker: number;
  pid: number | undefined;
  value: T;
}

let nextId = 1;
const waiting = new Map<number, (w: Worker, a: Answer) => void>();
let listening = false;

/** Primary: asks every live worker for `kind`; resolves with the answers that came within `timeoutMs`. */
export function askWorkers<T>(kind: string, timeoutMs = 3000): Promise<Array<WorkerAnswer<T>>> {
  if (!listening) {
    listening = true;
    cluster.on('message', (w: Worker, msg: Answer) => {
      if (msg?.type === 'scriptgate:answer') waiting.get(msg.id)?.(w, msg);
    });
  }
  const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w && w.isConnected());
  if (workers.length === 0) return Promise.resolve([]);
  const id = nextId++;
  return new Promise((resolve) => {
    const answers: Array<WorkerAnswer<T>> = [];
    let left = workers.length;
    const done = () => {
      clearTimeout(timer);
      waiting.delete(id);
      resolve(answers.sort((a, b) => a.worker - b.worker));
    };
    const timer = setTimeout(done, timeoutMs);
    timer.unref();
    waiting.set(id, (w, a) => {
      if (a.ok) answers.push({ worker: w.id, pid: w.process.pid, value: a.value as T });
      if (--left === 0) done();
    });
    for (const w of workers) {
      w.send({ type: 'scriptgate:ask', id, kind } satisfies Ask, (err: Error | null) => {
        if (err && waiting.has(id) && --left === 0) done();
      });
    }
  });
}

const handlers = new Map<string, () => unknown>();

/** Worker: answers the primary's `kind` questions with `fn()` (may return a promise). */
export function answerPrimary(kind: string, fn: () => unknown): void {
  if (!process.send) return;
  if (handlers.size === 0) {
    process.on('message', (msg: Ask) => {
      if (msg?.type !== 'scriptgate:ask') return;
      const h = handlers.get(msg.kind);
      const reply = (a: Answer) => {
        if (process.connected) process.send!(a, undefined, {}, () => undefined);
      };
      if (!h) return reply({ type: 'scriptgate:answer', id: msg.id, ok: false });
      Promise.resolve()
        .then(h)
        .then(
          (value) => reply({ type: 'scriptgate:answer', id: msg.id, ok: true, value }),
          () => reply({ type: 'scriptgate:answer', id: msg.id, ok: false }),
        );
    });
  }
  handlers.set(kind, fn);
}
