/**
 * Tracing end to end: a proxy with `tracing:` pointed at a small local OTLP/HTTP receiver (a
 * node:http server taking POST /v1/traces JSON), a route with phase scripts, and an origin that
 * records the traceparent it was sent. Checks the span tree (request → script phases and upstream
 * try), the ids the upstream saw, and that an incoming traceparent is continued or, when invalid,
 * replaced.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { closeServer, request, startOrigin, startProxy } from '../helpers/servers.ts';
import { flushTraces } from '../../src/observability/request-telemetry.ts';
import WebSocket from 'ws';
import { startWsOrigin } from '../helpers/ws.ts';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: Array<{ key: string; value: Record<string, unknown> }>;
  status: { code: number };
}

async function startReceiver() {
  const spans: OtlpSpan[] = [];
  const services = new Set<string>();
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      expect(req.method).toBe('POST');
      expect(req.url).toBe('/v1/traces');
      expect(req.headers['content-type']).toBe('application/json');
      const doc = JSON.parse(body) as { resourceSpans: Array<{ resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> }; scopeSpans: Array<{ spans: OtlpSpan[] }> }> };
      for (const rs of doc.resourceSpans) {
        services.add(rs.resource.attributes.find((a) => a.key === 'service.name')!.value.stringValue!);
        for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { spans, services, url: `http://127.0.0.1:${port}`, close: () => closeServer(server) };
}

const files = {
  'rewrite.ts': `export default function rewrite(ctx) { ctx.request.headers.set('x-rewritten', '1'); }\n`,
  'headers.ts': `export default function headers(ctx) { ctx.response.headers.set('x-filtered', '1'); }\n`,
};

async function tracedProxy(originAddress: string, endpoint: string, extra = '') {
  return startProxy(
    `listen:
  - address: 127.0.0.1:0
tracing: { otlp_endpoint: "${endpoint}", service_name: edge-test, flush_interval: 10s${extra} }
upstreams:
  up: { targets: ["${originAddress}"] }
routes:
  - name: api
    upstream: up
    rewrite_by_script: rewrite.ts
    header_filter_by_script: headers.ts
`,
    files,
  );
}

/**
 * The request span ends when the server side of the response closes, which may come a moment after
 * the client has read it: flush (sending what is queued) until `roots` request spans arrived.
 */
async function flushUntil(rx: { spans: OtlpSpan[] }, roots: number): Promise<void> {
  for (let i = 0; i < 200 && rx.spans.filter((s) => s.kind === 2).length < roots; i++) {
    await flushTraces();
    await new Promise((r) => setImmediate(r));
  }
  await flushTraces();
}

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

describe('tracing', () => {
  it('continues an incoming traceparent: request span → phase spans and upstream span; upstream sees the upstream span as parent', async () => {
    const rx = await startReceiver();
    const origin = await startOrigin();
    const { port } = await tracedProxy(origin.address, rx.url);
    const res = await request(port, { path: '/a', headers: { traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: 'vendor=abc,other=x' } });
    expect(res.status).toBe(200);
    expect(res.headers['x-filtered']).toBe('1');
    await flushUntil(rx, 1);
    await rx.close();

    expect(rx.services).toEqual(new Set(['edge-test']));
    const mine = rx.spans.filter((s) => s.traceId === TRACE);
    const root = mine.find((s) => s.kind === 2)!;
    expect(root.parentSpanId).toBe(PARENT);
    expect(root.attributes).toContainEqual({ key: 'http.route', value: { stringValue: 'api' } });
    expect(root.attributes).toContainEqual({ key: 'http.response.status_code', value: { intValue: '200' } });
    // OpenTelemetry's HTTP server span: "{method} {route}", the path, scheme and client.
    expect(root.name).toBe('GET api');
    expect(root.attributes).toContainEqual({ key: 'url.path', value: { stringValue: '/a' } });
    expect(root.attributes).toContainEqual({ key: 'url.scheme', value: { stringValue: 'http' } });
    expect(root.attributes).toContainEqual({ key: 'client.address', value: { stringValue: '127.0.0.1' } });
    const upstream = mine.filter((s) => s.kind === 3);
    expect(upstream).toHaveLength(1);
    expect(upstream[0]!.name).toBe('upstream up');
    expect(upstream[0]!.parentSpanId).toBe(root.spanId);
    const phases = mine.filter((s) => s.kind === 1).map((s) => s.name).sort();
    expect(phases).toEqual(['script header_filter', 'script rewrite']);
    for (const s of mine.filter((x) => x !== root)) {
      expect(s.parentSpanId).toBe(root.spanId);
      expect(BigInt(s.startTimeUnixNano) >= BigInt(root.startTimeUnixNano)).toBe(true);
      expect(BigInt(s.endTimeUnixNano) <= BigInt(root.endTimeUnixNano)).toBe(true);
    }
    expect(new Set(mine.map((s) => s.spanId)).size).toBe(mine.length);

    const seen = origin.seen[0]!.headers;
    expect(seen.traceparent).toBe(`00-${TRACE}-${upstream[0]!.spanId}-01`);
    expect(seen.tracestate).toBe('vendor=abc,other=x');
    expect(seen['x-rewritten']).toBe('1');
  });

  it('starts a new trace without a traceparent, or with an invalid one (whose tracestate is dropped)', async () => {
    const rx = await startReceiver();
    const origin = await startOrigin();
    const { port } = await tracedProxy(origin.address, rx.url);
    await request(port, { path: '/new' });
    await request(port, { path: '/bad', headers: { traceparent: `00-${TRACE.toUpperCase()}-${PARENT}-01`, tracestate: 'vendor=abc' } });
    await request(port, { path: '/zero', headers: { traceparent: `00-${'0'.repeat(32)}-${PARENT}-01` } });
    await flushUntil(rx, 3);
    await rx.close();
    const roots = rx.spans.filter((s) => s.kind === 2);
    expect(roots).toHaveLength(3);
    for (const r of roots) {
      expect(r.parentSpanId).toBeUndefined();
      expect(r.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(r.traceId).not.toBe(TRACE);
    }
    expect(new Set(roots.map((r) => r.traceId)).size).toBe(3);
    for (const s of origin.seen) {
      const tp = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(s.headers.traceparent as string)!;
      expect(tp).not.toBeNull();
      const up = rx.spans.find((x) => x.spanId === tp[2])!;
      expect(up.kind).toBe(3);
      expect(up.traceId).toBe(tp[1]);
      expect(s.headers.tracestate).toBeUndefined();
    }
  });

  it('a caller that did not sample: nothing exported, traceparent still passed on with flags 00', async () => {
    const rx = await startReceiver();
    const origin = await startOrigin();
    const { port } = await tracedProxy(origin.address, rx.url);
    const res = await request(port, { headers: { traceparent: `00-${TRACE}-${PARENT}-00` } });
    expect(res.status, res.text).toBe(200);
    await flushUntil(rx, 0);
    await rx.close();
    expect(rx.spans).toHaveLength(0);
    expect(origin.seen[0]!.headers.traceparent).toMatch(new RegExp(`^00-${TRACE}-[0-9a-f]{16}-00$`));
    expect(origin.seen[0]!.headers.traceparent).not.toContain(PARENT);
  });

  it('each retry is its own upstream span, and the failed one is marked as an error', async () => {
    const rx = await startReceiver();
    const origin = await startOrigin();
    const { port } = await startProxy(
      `listen:
  - address: 127.0.0.1:0
tracing: { otlp_endpoint: "${rx.url}", flush_interval: 10s }
upstreams:
  up: { targets: ["127.0.0.1:1", "${origin.address}"], retries: 1, passive: { max_fails: 0 } }
routes:
  - upstream: up
`,
    );
    const res = await request(port, { headers: { traceparent: `00-${TRACE}-${PARENT}-01` } });
    expect(res.status).toBe(200);
    await flushUntil(rx, 1);
    await rx.close();
    const tries = rx.spans.filter((s) => s.kind === 3);
    expect(tries).toHaveLength(2);
    const failed = tries.find((t) => t.status.code === 2)!;
    const ok = tries.find((t) => t.status.code === 0)!;
    expect(failed.attributes).toContainEqual({ key: 'server.address', value: { stringValue: '127.0.0.1' } });
    expect(failed.attributes).toContainEqual({ key: 'server.port', value: { intValue: '1' } });
    expect(origin.seen[0]!.headers.traceparent).toBe(`00-${TRACE}-${ok.spanId}-01`);
  });

  it('tracing off: an incoming traceparent passes through unchanged', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(`listen:\n  - address: 127.0.0.1:0\nupstreams:\n  up: { targets: ["${origin.address}"] }\nroutes:\n  - upstream: up\n`);
    await request(port, { headers: { traceparent: `00-${TRACE}-${PARENT}-01` } });
    expect(origin.seen[0]!.headers.traceparent).toBe(`00-${TRACE}-${PARENT}-01`);
  });

  it('a WebSocket handshake is traced like a request: the origin sees the upstream try span as parent; request, script and upstream spans are exported', async () => {
    const rx = await startReceiver();
    const origin = await startWsOrigin();
    const { port } = await tracedProxy(origin.address, rx.url);
    const ws = new WebSocket(`ws://127.0.0.1:${port}/chat`, ['chat'], { headers: { traceparent: `00-${TRACE}-${PARENT}-01` } });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.close();
    await new Promise((r) => ws.once('close', r));
    await flushUntil(rx, 1);
    await rx.close();
    const mine = rx.spans.filter((s) => s.traceId === TRACE);
    const root = mine.find((s) => s.kind === 2)!;
    expect(root.parentSpanId).toBe(PARENT);
    expect(root.attributes).toContainEqual({ key: 'http.response.status_code', value: { intValue: '101' } });
    const upstream = mine.filter((s) => s.kind === 3);
    expect(upstream).toHaveLength(1);
    expect(upstream[0]!.parentSpanId).toBe(root.spanId);
    expect(mine.filter((s) => s.kind === 1).map((s) => s.name)).toEqual(['script rewrite']);
    expect(origin.upgrades[0]!.headers.traceparent).toBe(`00-${TRACE}-${upstream[0]!.spanId}-01`);
  });
});
