// /proc readers: a process tree (a PID and all its descendants), CPU time (utime+stime) of a tree,
// and an RSS sampler (sum of VmRSS over the tree every ~200 ms, plus VmHWM per process).
import { readFileSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

/** Clock ticks per second for /proc/PID/stat times (sysconf CLK_TCK; 100 on Linux). */
export const CLK_TCK = (() => {
  try {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2000 });
    const n = Number.parseInt(r.stdout, 10);
    if (n > 0) return n;
  } catch {}
  return 100;
})();

/** Parsed /proc/PID/stat, or undefined when the process is gone. Times in ticks. */
export function readStat(pid) {
  let s;
  try {
    s = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  const close = s.lastIndexOf(')');
  const comm = s.slice(s.indexOf('(') + 1, close);
  const f = s.slice(close + 2).split(' ');
  // f[0] is field 3 (state); field N is f[N - 3]
  return {
    pid,
    comm,
    state: f[0],
    ppid: Number(f[1]),
    utime: Number(f[11]),
    stime: Number(f[12]),
    cutime: Number(f[13]),
    cstime: Number(f[14]),
    starttime: Number(f[19]),
  };
}

/** VmRSS and VmHWM in KiB from /proc/PID/status, or undefined when gone. */
export function readMem(pid) {
  let s;
  try {
    s = readFileSync(`/proc/${pid}/status`, 'latin1');
  } catch {
    return undefined;
  }
  const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(s);
  const hwm = /^VmHWM:\s+(\d+)\s+kB/m.exec(s);
  return { rssKiB: rss ? Number(rss[1]) : 0, hwmKiB: hwm ? Number(hwm[1]) : 0 };
}

/** PIDs of all descendants of `root` (not including root), from one scan of /proc. */
export function descendants(root) {
  const children = new Map();
  let names;
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const n of names) {
    if (n.charCodeAt(0) < 48 || n.charCodeAt(0) > 57) continue;
    const st = readStat(Number(n));
    if (!st) continue;
    let list = children.get(st.ppid);
    if (!list) children.set(st.ppid, (list = []));
    list.push(st.pid);
  }
  const out = [];
  const queue = [root];
  for (let guard = 0; queue.length && guard < 100_000; guard++) {
    const p = queue.shift();
    for (const c of children.get(p) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

/** Sum of VmRSS (KiB) over a process tree right now. */
export function treeRssKiB(root) {
  let sum = 0;
  for (const pid of tree(root)) sum += readMem(pid)?.rssKiB ?? 0;
  return sum;
}

/** [root, ...descendants] that are alive now. */
export function tree(root) {
  return [root, ...descendants(root)];
}

/**
 * CPU snapshot of a process tree: per process (keyed by pid:starttime so a reused PID is not
 * mistaken for the old process) its utime+stime and cutime+cstime in ticks.
 */
export function cpuSnapshot(root) {
  const snap = new Map();
  for (const pid of tree(root)) {
    const st = readStat(pid);
    if (!st || st.state === 'Z') continue;
    snap.set(`${pid}:${st.starttime}`, { pid, comm: st.comm, own: st.utime + st.stime, reaped: st.cutime + st.cstime });
  }
  return snap;
}

/**
 * CPU-seconds the tree used between two snapshots: for processes present in both, the growth of
 * utime+stime plus the growth of cutime+cstime (children that exited and were reaped in between);
 * for processes that appeared in between and exist at the end, all their utime+stime.
 */
export function cpuSecondsBetween(before, after) {
  let ticks = 0;
  const perProcess = [];
  for (const [key, a] of after) {
    const b = before.get(key);
    const d = b ? a.own - b.own + Math.max(0, a.reaped - b.reaped) : a.own;
    ticks += d;
    perProcess.push({ pid: a.pid, comm: a.comm, cpuS: d / CLK_TCK, new: !b });
  }
  return { cpuS: ticks / CLK_TCK, perProcess };
}

/**
 * Samples the tree's memory every `intervalMs` until stopped: the peak of the summed VmRSS, and
 * the last VmHWM seen per process. The process list is refreshed every ~1 s (a /proc scan).
 */
export function startRssSampler(root, intervalMs = 200) {
  let pids = tree(root);
  let lastScan = Date.now();
  let peakSumKiB = 0;
  let samples = 0;
  const hwm = new Map(); // pid -> {comm, hwmKiB, rssMaxKiB}
  const sample = () => {
    if (Date.now() - lastScan > 1000) {
      pids = tree(root);
      lastScan = Date.now();
    }
    let sum = 0;
    for (const pid of pids) {
      const m = readMem(pid);
      if (!m) continue;
      sum += m.rssKiB;
      const prev = hwm.get(pid);
      const comm = prev?.comm ?? readStat(pid)?.comm ?? '?';
      hwm.set(pid, { comm, hwmKiB: Math.max(prev?.hwmKiB ?? 0, m.hwmKiB), rssMaxKiB: Math.max(prev?.rssMaxKiB ?? 0, m.rssKiB) });
    }
    samples++;
    if (sum > peakSumKiB) peakSumKiB = sum;
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      const perProcess = [...hwm].map(([pid, v]) => ({ pid, ...v }));
      const maxHwmKiB = perProcess.reduce((m, p) => Math.max(m, p.hwmKiB), 0);
      return { peakSumKiB, maxHwmKiB, samples, perProcess };
    },
  };
}

/**
 * CPU ticks spent by everyone, all cores (/proc/stat: user+nice+system+steal; interrupt and
 * softirq time, which loopback traffic produces and no process is charged for, left out).
 */
export function systemBusyTicks() {
  try {
    const f = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
    return f[0] + f[1] + f[2] + (f[7] || 0);
  } catch {
    return NaN;
  }
}

/** This process's own CPU ticks plus those of its reaped children (wrk, once it has exited). */
export function selfTicks() {
  const st = readStat(process.pid);
  return st ? st.utime + st.stime + st.cutime + st.cstime : NaN;
}

/**
 * Share of the machine's CPU (0..1, all cores) used over `ms` by processes other than `exclude`
 * (PIDs whose trees are ours: origin, proxy) and this harness.
 */
export async function otherLoad(ms, exclude = []) {
  const cores = Math.max(1, (readFileSync('/proc/stat', 'latin1').match(/^cpu\d+ /gm) || []).length);
  const ours = () => exclude.reduce((sum, pid) => {
    for (const [, v] of cpuSnapshot(pid)) sum += v.own;
    return sum;
  }, 0);
  const s0 = systemBusyTicks(), o0 = ours(), h0 = selfTicks();
  await new Promise((r) => setTimeout(r, ms));
  const other = systemBusyTicks() - s0 - (ours() - o0) - (selfTicks() - h0);
  return Math.min(1, Math.max(0, other / CLK_TCK / ((ms / 1000) * cores)));
}
