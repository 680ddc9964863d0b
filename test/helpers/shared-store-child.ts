/**
 * A child process for the shared-store cross-process tests (test/integration/shared-dict-open-race.test.ts),
 * run as `node --import tsx shared-store-child.ts <mode> <dir> [n]`:
 * - `incr <dir>`: increments `n` in dict `hits` (alternately one incr per write transaction and
 *   two per `writeBatch`, as the log phase does) until its stdin ends, then prints the values it got.
 * - `reopen <dir> <n>`: n times opens the store as a fresh process does, increments once, and closes
 *   it again (so the environment is opened n times); prints the values it got.
 * Both print one JSON line `{ "values": [...] }` and exit 0.
 */
import { SHARED_OP, SharedStore } from '../../src/sandbox/shared-store.ts';

const [mode, dir, nArg] = process.argv.slice(2);
const DICTS = { hits: { capacity: 10 } };
const incr = (store: SharedStore) => store.call('t', SHARED_OP.incr, 'hits', 'n', 1, 0, undefined) as number;
const values: number[] = [];
const done = () => process.stdout.write(`${JSON.stringify({ values })}\n`, () => process.exit(0));

if (mode === 'incr') {
  const store = SharedStore.forConfig('race.yaml', DICTS, dir);
  let stop = false;
  process.stdin.on('data', () => undefined);
  process.stdin.on('end', () => (stop = true));
  let i = 0;
  const step = () => {
    for (let j = 0; j < 8; j++, i++) {
      if (i % 2) values.push(incr(store));
      else store.writeBatch(() => values.push(incr(store), incr(store)));
    }
    if (stop) {
      store.release();
      done();
    } else setImmediate(step);
  };
  // Ready once the first write is in: the parent starts the reopening process then.
  values.push(incr(store));
  process.stderr.write('ready\n');
  setImmediate(step);
} else if (mode === 'reopen') {
  for (let k = 0; k < Number(nArg); k++) {
    const store = SharedStore.forConfig('race.yaml', DICTS, dir);
    values.push(incr(store));
    store.release();
  }
  done();
} else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
