/**
 * A small parser for the Prometheus text exposition format (version 0.0.4), for tests that scrape
 * `/metrics`: `# HELP` / `# TYPE` lines, samples `name{label="value",…} value [timestamp]` with
 * escaped label values (\\, \", \n). Throws on a line it cannot read, so a malformed exposition
 * fails the test.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  /** metric family name → type (counter, gauge, histogram, summary, untyped). */
  types: Map<string, string>;
  help: Map<string, string>;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

function parseValue(s: string): number {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  const v = Number(s);
  if (s === '' || Number.isNaN(v)) throw new Error(`bad sample value ${JSON.stringify(s)}`);
  return v;
}

function parseLabels(line: string, at: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = at + 1; // after '{'
  for (;;) {
    while (line[i] === ' ') i++;
    if (line[i] === '}') return { labels, end: i + 1 };
    const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i));
    if (!m) throw new Error(`bad label name at ${i}: ${line}`);
    const key = m[0];
    i += key.length;
    if (line[i] !== '=' || line[i + 1] !== '"') throw new Error(`expected =" at ${i}: ${line}`);
    i += 2;
    let value = '';
    for (;;) {
      const c = line[i];
      if (c === undefined) throw new Error(`unterminated label value: ${line}`);
      if (c === '"') break;
      if (c === '\\') {
        const n = line[i + 1];
        value += n === 'n' ? '\n' : n === '\\' ? '\\' : n === '"' ? '"' : `\\${n}`;
        i += 2;
      } else {
        value += c;
        i++;
      }
    }
    labels[key] = value;
    i++; // closing quote
    if (line[i] === ',') i++;
  }
}

/** Parses a whole exposition. */
export function parsePrometheusText(text: string): Exposition {
  const out: Exposition = { types: new Map(), help: new Map(), samples: [] };
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(.*)$/.exec(line);
      if (m?.[1] === 'TYPE') out.types.set(m[2]!, m[3]!);
      else if (m?.[1] === 'HELP') out.help.set(m[2]!, m[3]!);
      continue;
    }
    const n = NAME.exec(line);
    if (!n) throw new Error(`bad sample line: ${line}`);
    let i = n[0].length;
    let labels: Record<string, string> = {};
    if (line[i] === '{') ({ labels, end: i } = parseLabels(line, i));
    const rest = line.slice(i).trim().split(/\s+/);
    if (rest.length < 1 || rest.length > 2) throw new Error(`bad sample line: ${line}`);
    out.samples.push({ name: n[0], labels, value: parseValue(rest[0]!) });
  }
  return out;
}

/** Samples of `name` whose labels include every one of `match`. */
export function samples(e: Exposition, name: string, match: Record<string, string> = {}): Sample[] {
  return e.samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

/** Sum of the values of `name` whose labels include `match` (0 when none). */
export function sumOf(e: Exposition, name: string, match: Record<string, string> = {}): number {
  return samples(e, name, match).reduce((a, s) => a + s.value, 0);
}
