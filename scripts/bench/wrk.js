// Runs wrk (bounded by its own -d plus a margin) and parses its --latency report.
import { start, stop } from './procs.js';

/** "1.23ms" → milliseconds. wrk prints us, ms, s, m, h. */
export function parseDurationMs(s) {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(s.trim());
  if (!m) return NaN;
  const v = Number(m[1]);
  return { us: v / 1000, ms: v, s: v * 1000, m: v * 60_000, h: v * 3_600_000 }[m[2]];
}

/** "20.00MB" → bytes. */
function parseSize(s) {
  const m = /^([\d.]+)([KMGT]?B)$/.exec(s.trim());
  if (!m) return NaN;
  return Number(m[1]) * { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 }[m[2]];
}

/** Parse wrk's text output (with --latency). Missing fields come back as NaN/0. */
export function parseWrk(text) {
  const num = (re) => {
    const m = re.exec(text);
    return m ? Number(m[1]) : NaN;
  };
  const lat = (p) => {
    const m = new RegExp(`^\\s*${p}%\\s+(\\S+)`, 'm').exec(text);
    return m ? parseDurationMs(m[1]) : NaN;
  };
  const reqLine = /(\d+) requests in ([\d.]+\w+), ([\d.]+\w+) read/.exec(text);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    requests: reqLine ? Number(reqLine[1]) : NaN,
    durationMs: reqLine ? parseDurationMs(reqLine[2]) : NaN,
    bytesRead: reqLine ? parseSize(reqLine[3]) : NaN,
    p50Ms: lat(50),
    p75Ms: lat(75),
    p90Ms: lat(90),
    p99Ms: lat(99),
    non2xx: num(/Non-2xx or 3xx responses:\s+(\d+)/) || 0,
    socketErrors: sock ? { connect: +sock[1], read: +sock[2], write: +sock[3], timeout: +sock[4] } : { connect: 0, read: 0, write: 0, timeout: 0 },
  };
}

/**
 * Runs a load generator that stops by itself after `durationMs`; stops it by PID (SIGKILL) if it
 * runs 15 s past that. Resolves with its process handle (captured output in `h.entry`); rejects
 * when it was killed, failed to start or exited non-zero.
 */
export async function runBounded(name, bin, args, durationMs) {
  const h = start(name, bin, args, { capture: true });
  const hardMs = durationMs + 15_000;
  let timer;
  const late = new Promise((r) => (timer = setTimeout(() => r('late'), hardMs)));
  const r = await Promise.race([h.exited, late]);
  clearTimeout(timer);
  if (r === 'late') {
    await stop(h, { signal: 'SIGKILL', graceMs: 1000 });
    throw new Error(`${name} ran past ${hardMs} ms and was killed`);
  }
  if (r.error) throw r.error;
  if (r.code !== 0) throw new Error(`${name} exited ${r.code ?? r.signal}: ${(h.entry.err || h.entry.out).trim().slice(-300)}`);
  return h;
}

/**
 * wrk -t threads -c conns -d duration --latency url. Resolves {raw, ...parsed}. Stopped (by PID)
 * if it runs more than duration + 15 s.
 */
export async function runWrk({ wrkBin, url, threads = 2, conns = 64, duration = '8s', timeout = '5s' }) {
  const args = [`-t${threads}`, `-c${conns}`, `-d${duration}`, '--timeout', timeout, '--latency', url];
  const h = await runBounded('wrk', wrkBin, args, parseDurationMs(duration));
  const parsed = parseWrk(h.entry.out);
  if (!Number.isFinite(parsed.rps)) throw new Error(`could not parse wrk output: ${h.entry.out.slice(0, 300)}`);
  return { raw: h.entry.out, ...parsed };
}
