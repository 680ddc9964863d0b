// Turns measured rows into the printed table, the ratios (with the issues' targets), and the JSON.

/** Requests per proxy CPU-second measured in ../shared/bench-reference/README.md (2 cores). */
export const REFERENCE = {
  nginx: { small: 52_100, '64k': 21_400, rssMiB: 15 },
  'nginx-lua': { small: 37_600, '64k': 8_400, rssMiB: 20 },
  baseline: { small: 15_900, '64k': 6_700, rssMiB: 121 },
  'baseline-phases': { small: 13_800, '64k': 4_800, rssMiB: 117 },
  'node-http-proxy': { small: 10_700, '64k': 5_700, rssMiB: 84 },
};

const size = (p) => (p.endsWith('64k') ? '64k' : 'small');

const fmtK = (n) => (n == null || !Number.isFinite(n) ? '–' : n >= 10_000 ? `${(n / 1000).toFixed(1)}k` : n >= 1000 ? `${(n / 1000).toFixed(2)}k` : n.toFixed(0));
const fmt = (n, d = 2) => (n == null || !Number.isFinite(n) ? '–' : n.toFixed(d));

/** Aligned markdown-like table. */
function table(head, rows, alignRight) {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => '| ' + cells.map((c, i) => (alignRight[i] ? String(c).padStart(w[i]) : String(c).padEnd(w[i]))).join(' | ') + ' |';
  return [line(head), '|' + w.map((x, i) => (alignRight[i] ? '-'.repeat(x + 1) + ':' : '-'.repeat(x + 2))).join('|') + '|', ...rows.map(line)].join('\n');
}

export function renderTable(rows) {
  const head = ['row', 'path', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'proxy CPU-s', 'req/CPU-s', 'ref', 'CPU-s/10k req', 'peak RSS MiB', 'max proc HWM', 'new upstream conns', 'other CPU'];
  const right = [false, false, true, true, true, true, true, true, true, true, true, true, true, true];
  const out = [];
  for (const r of rows) {
    if (r.status !== 'ok') {
      out.push([r.label, '', 'failed*', '', '', '', '', '', '', '', '', '', '', '']);
      continue;
    }
    for (const [p, m] of Object.entries(r.results)) {
      if (m.error) {
        out.push([r.label, p, 'failed*', '', '', '', '', '', '', '', '', '', '', '']);
        continue;
      }
      const se = m.socketErrors ?? {};
      const errs = (m.non2xx || 0) + (se.connect || 0) + (se.read || 0) + (se.write || 0) + (se.timeout || 0);
      const ref = REFERENCE[r.id]?.[size(p)];
      out.push([
        r.label,
        p,
        fmt(m.rps, 0),
        fmt(m.p50Ms),
        fmt(m.p99Ms),
        String(errs),
        m.proxyCpuS == null ? '–' : fmt(m.proxyCpuS),
        fmtK(m.rpsPerCpu),
        ref ? fmtK(ref) : '',
        m.cpuSPer10k == null ? '–' : fmt(m.cpuSPer10k, 3),
        m.peakRssMiB == null ? '–' : fmt(m.peakRssMiB, 1),
        m.maxHwmMiB == null ? '–' : fmt(m.maxHwmMiB, 1),
        `${Math.round(m.upstreamNewConns)} / ${Math.round(m.upstreamRequests)}`,
        Number.isFinite(m.otherLoad) ? `${(m.otherLoad * 100).toFixed(0)}%` : '–',
      ]);
    }
  }
  const failures = [];
  for (const r of rows) {
    if (r.status !== 'ok') failures.push(`* ${r.label}: failed: ${r.reason}`);
    else for (const [p, m] of Object.entries(r.results)) if (m.error) failures.push(`* ${r.label} ${p}: failed: ${m.error}`);
  }
  // h2load prints no percentiles: its mean/max latency and status counts go under the table
  const h2 = [];
  for (const r of rows) {
    if (r.status !== 'ok') continue;
    for (const [p, m] of Object.entries(r.results)) {
      if (m.error || m.tool !== 'h2load') continue;
      const st = m.status ?? {};
      h2.push(`  ${r.label} ${p}: ${Math.round(m.requests)} requests finished, latency mean ${fmt(m.meanMs)} ms, max ${fmt(m.maxMs)} ms; status 2xx ${st['2xx'] ?? '–'}, 3xx ${st['3xx'] ?? '–'}, 4xx ${st['4xx'] ?? '–'}, 5xx ${st['5xx'] ?? '–'}; failed ${m.failed ?? '–'}, errored ${m.errored ?? '–'}, timeout ${m.h2Timeout ?? '–'}`);
    }
  }
  const h2Note = h2.length ? '\n\nHTTP/2 rows (h2load; p50/p99 are not printed by h2load):\n' + h2.join('\n') : '';
  return table(head, out, right) + h2Note + (failures.length ? '\n\n' + failures.join('\n') : '');
}

function metric(rows, id, sz, key) {
  const r = rows.find((x) => x.id === id);
  if (!r || r.status !== 'ok') return undefined;
  const p = Object.keys(r.results).find((k) => size(k) === sz);
  const m = p && r.results[p];
  if (!m || m.error || m[key] == null || !Number.isFinite(m[key])) return undefined;
  return m[key];
}

function rowPeak(rows, id, key) {
  const r = rows.find((x) => x.id === id);
  if (!r || r.status !== 'ok') return undefined;
  const v = Object.values(r.results).filter((m) => !m.error && m[key] != null).map((m) => m[key]);
  return v.length ? Math.max(...v) : undefined;
}

/**
 * The ratios the issues ask for. Each: {name, size?, value, unit, target?, meets?, detail}.
 * `value` is undefined when a row it needs did not run or failed.
 */
export function computeRatios(rows) {
  const out = [];
  const ratio = (name, a, b, target, sz) => {
    const x = metric(rows, a, sz, 'rpsPerCpu');
    const y = metric(rows, b, sz, 'rpsPerCpu');
    const tx = metric(rows, a, sz, 'rps');
    const ty = metric(rows, b, sz, 'rps');
    const value = x !== undefined && y !== undefined ? x / y : undefined;
    out.push({
      name,
      size: sz,
      value,
      unit: 'x',
      target,
      meets: target !== undefined && value !== undefined ? value >= target : undefined,
      throughput: tx !== undefined && ty !== undefined ? tx / ty : undefined,
    });
  };
  for (const sz of ['small', '64k']) {
    ratio('scriptgate(1w) / nginx proxy_pass', 'scriptgate-1w', 'nginx', undefined, sz);
    ratio('scriptgate(1w) / bare node:http+undici', 'scriptgate-1w', 'baseline', 1.0, sz);
    ratio('scriptgate(1w) / node-http-proxy', 'scriptgate-1w', 'node-http-proxy', 1.5, sz);
    ratio('scriptgate(auto) / nginx proxy_pass', 'scriptgate-auto', 'nginx', undefined, sz);
    ratio('scriptgate five phases / nginx+Lua', 'scriptgate-phases', 'nginx-lua', 0.3, sz);
    ratio('scriptgate five phases / node-http-proxy (no scripts)', 'scriptgate-phases', 'node-http-proxy', 1.0, sz);
    ratio('scriptgate five phases / bare node + 5 tasks plain JS', 'scriptgate-phases', 'baseline-phases', undefined, sz);
    if (sz === 'small') ratio('scriptgate h2+TLS / nginx http2+TLS (h2load)', 'scriptgate-h2', 'nginx-h2', undefined, sz);
    const ph = metric(rows, 'scriptgate-phases', sz, 'rpsPerCpu');
    const no = metric(rows, 'scriptgate-1w', sz, 'rpsPerCpu');
    const us = ph !== undefined && no !== undefined ? 1e6 / ph - 1e6 / no : undefined;
    out.push({ name: 'five sandboxed phases: CPU per request over no scripts', size: sz, value: us, unit: 'µs', target: 20, meets: us !== undefined ? us <= 20 : undefined, lowerIsBetter: true });
  }
  for (const k of ['maxHwmMiB', 'peakRssMiB']) {
    const a = rowPeak(rows, 'scriptgate-1w', k);
    const b = rowPeak(rows, 'baseline', k);
    const value = a !== undefined && b !== undefined ? a / b : undefined;
    out.push({
      name: k === 'maxHwmMiB' ? 'peak RSS of one process (VmHWM): scriptgate(1w) / bare pass-through' : 'peak RSS, all processes summed: scriptgate(1w) / bare pass-through',
      value,
      unit: 'x',
      target: k === 'maxHwmMiB' ? 1.2 : undefined,
      meets: k === 'maxHwmMiB' && value !== undefined ? value <= 1.2 : undefined,
      lowerIsBetter: true,
      detail: a !== undefined && b !== undefined ? `${a.toFixed(1)} MiB vs ${b.toFixed(1)} MiB` : undefined,
    });
  }
  return out;
}

export function renderRatios(ratios) {
  const lines = [];
  const missing = ratios.filter((r) => r.value === undefined).length;
  for (const r of ratios) {
    const label = r.size ? `${r.name} [${r.size}]` : r.name;
    if (r.value === undefined) continue;
    const v = r.unit === 'x' ? `${r.value.toFixed(2)}x` : `${r.value.toFixed(1)} ${r.unit}`;
    let extra = '';
    if (r.throughput !== undefined) extra += `  (req/s ratio ${r.throughput.toFixed(2)}x)`;
    if (r.detail) extra += `  (${r.detail})`;
    if (r.target !== undefined) extra += `  target ${r.lowerIsBetter ? '≤' : '≥'} ${r.unit === 'x' ? r.target + 'x' : r.target + ' ' + r.unit}: ${r.meets ? 'met' : 'NOT met'}`;
    lines.push(`  ${label.padEnd(72)}  ${v.padStart(9)}${extra}`);
  }
  if (missing) lines.push(`  (${missing} more need rows that did not run or failed)`);
  return lines.join('\n');
}

/** Problems worth a line under the table: errors, non-2xx, upstream reconnects, failed checks. */
export function renderWarnings(rows) {
  const w = [];
  for (const r of rows) {
    if (r.status !== 'ok') continue;
    if (r.afterLoad) w.push(`${r.label}: ${r.afterLoad}`);
    for (const [p, m] of Object.entries(r.results)) {
      if (m.error) continue;
      const se = m.socketErrors ?? {};
      if (m.non2xx) w.push(`${r.label} ${p}: ${m.non2xx} non-2xx/3xx responses`);
      if (se.connect || se.read || se.write || se.timeout) w.push(`${r.label} ${p}: socket errors connect ${se.connect}, read ${se.read}, write ${se.write}, timeout ${se.timeout}`);
      const growthReqs = m.reps?.find((x) => x.rssGrowthMiB === m.rssGrowthMiB)?.requests ?? m.requests;
      const perReq = (m.rssGrowthMiB * 1024) / growthReqs;
      if (m.rssGrowthMiB != null && m.rssGrowthMiB > 24 && perReq > 4) {
        w.push(`${r.label} ${p}: RSS grew from ${m.rssStartMiB.toFixed(0)} to ${m.rssEndMiB.toFixed(0)} MiB during a measured run (${perReq.toFixed(1)} KiB per request): a leak or unbounded buffering?`);
      }
      if (m.otherLoad > 0.1) w.push(`${r.label} ${p}: other processes used ${(m.otherLoad * 100).toFixed(0)}% of the machine's CPU during the run (${m.otherCpuS.toFixed(1)} CPU-s): figures are noisy`);
      if (r.id !== 'direct' && m.upstreamNewConns > Math.max(128, m.requests * 0.01)) {
        w.push(`${r.label} ${p}: ${m.upstreamNewConns} new upstream connections for ${m.requests} requests: upstream keep-alive is not reused`);
      }
    }
  }
  return w;
}
