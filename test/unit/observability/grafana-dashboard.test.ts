/**
 * examples/observability: the Grafana dashboard is valid JSON that Grafana can import (panels with
 * ids, grid positions and Prometheus targets) and every metric its queries name is one scriptgate
 * exports (src/observability/metrics.ts, plus prom-client's Node process metrics); the example
 * config is valid.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { collectProcessMetrics, registry } from '../../../src/observability/metrics.ts';
import { parseConfig } from '../../../src/config/load.ts';

const DIR = fileURLToPath(new URL('../../../examples/observability/', import.meta.url));

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets: Array<{ refId: string; expr: string }>;
}

describe('examples/observability/grafana-dashboard.json', () => {
  const dash = JSON.parse(readFileSync(DIR + 'grafana-dashboard.json', 'utf8')) as { title: string; uid: string; schemaVersion: number; panels: Panel[]; templating: { list: Array<{ query: { query: string } }> } };

  it('is an importable dashboard: title, uid, panels with unique ids, grid positions and queries', () => {
    expect(dash.title).toBe('scriptgate');
    expect(dash.uid).toMatch(/^[a-z0-9-]{1,40}$/);
    expect(dash.schemaVersion).toBeGreaterThan(30);
    expect(dash.panels.length).toBeGreaterThanOrEqual(10);
    expect(new Set(dash.panels.map((p) => p.id)).size).toBe(dash.panels.length);
    for (const p of dash.panels) {
      expect(p.title).toBeTruthy();
      expect(p.gridPos.w).toBeGreaterThan(0);
      expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
      expect(p.targets.length).toBeGreaterThan(0);
      for (const t of p.targets) expect(t.expr).toMatch(/\S/);
    }
  });

  it('queries only metrics that scriptgate exports, and covers the key ones', () => {
    collectProcessMetrics();
    const exported = new Set(registry.getMetricsAsArray().map((m) => m.name));
    const exprs = [...dash.panels.flatMap((p) => p.targets.map((t) => t.expr)), ...dash.templating.list.map((v) => v.query.query)];
    const used = new Set<string>();
    for (const e of exprs) {
      for (const [name] of e.matchAll(/\b(?:scriptgate|process|nodejs)_[a-z0-9_]+\b/g)) {
        used.add(exported.has(name) ? name : name.replace(/_(bucket|count|sum)$/, ''));
      }
    }
    for (const name of used) expect(exported.has(name), `${name} is not a metric in metrics.ts`).toBe(true);
    for (const key of ['scriptgate_requests_total', 'scriptgate_request_duration_seconds', 'scriptgate_upstream_duration_seconds', 'scriptgate_upstream_target_up', 'scriptgate_phase_duration_seconds', 'scriptgate_script_errors_total', 'scriptgate_reloads_total']) {
      expect(used.has(key), key).toBe(true);
    }
  });

  it('the example config is valid', () => {
    const file = DIR + 'scriptgate.yaml';
    const cfg = parseConfig(readFileSync(file, 'utf8'), file).config;
    expect(cfg.tracing?.sample_ratio).toBe(0.1);
    expect(cfg.log.access_log_options?.fields).toContain('trace_id');
    expect(cfg.tenants.edge?.log_level).toBe('debug');
  });
});
