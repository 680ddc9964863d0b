/** W3C trace context parsing and the OTLP exporter's queue (unit level; the end-to-end test is integration/observability-tracing). */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseTraceparent, parseTracestate, setTraceHeaders, type SpanRecord } from '../../../src/observability/tracing.ts';
import { OtlpExporter, encodeSpans } from '../../../src/observability/otlp-exporter.ts';

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const P = '00f067aa0ba902b7';

describe('traceparent', () => {
  it('accepts a valid header and reads the sampled flag', () => {
    expect(parseTraceparent(`00-${T}-${P}-01`)).toEqual({ traceId: T, parentId: P, sampled: true });
    expect(parseTraceparent(`00-${T}-${P}-00`)?.sampled).toBe(false);
    expect(parseTraceparent(`00-${T}-${P}-03`)?.sampled).toBe(true);
    // A future version may carry more fields; they are ignored.
    expect(parseTraceparent(`01-${T}-${P}-01-extra`)?.traceId).toBe(T);
  });

  it('refuses malformed ones', () => {
    for (const bad of [
      undefined,
      '',
      `00-${T.toUpperCase()}-${P}-01`,
      `00-${'0'.repeat(32)}-${P}-01`,
      `00-${T}-${'0'.repeat(16)}-01`,
      `ff-${T}-${P}-01`,
      `00-${T}-${P}-01-extra`,
      `00-${T.slice(1)}-${P}-01`,
      `00-${T}-${P}-1`,
      `00_${T}_${P}_01`,
    ]) {
      expect(parseTraceparent(bad), String(bad)).toBeUndefined();
    }
    expect(parseTraceparent([`00-${T}-${P}-01`, `00-${T}-${P}-01`])).toBeUndefined();
  });
});

describe('tracestate', () => {
  it('keeps a well-formed list, drops a malformed one whole', () => {
    expect(parseTracestate('vendor=abc, other@sys=x-1')).toBe('vendor=abc,other@sys=x-1');
    expect(parseTracestate(['a=1', 'b=2'])).toBe('a=1,b=2');
    expect(parseTracestate('Vendor=abc')).toBeUndefined();
    // A simple key starts with a letter; only a multi-tenant key's tenant may start with a digit.
    expect(parseTracestate('1abc=x')).toBeUndefined();
    expect(parseTracestate('1abc@sys=x')).toBe('1abc@sys=x');
    expect(parseTracestate('a=1,a=2')).toBeUndefined();
    expect(parseTracestate('novalue')).toBeUndefined();
    expect(parseTracestate(Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(','))).toBeUndefined();
  });

  it('setTraceHeaders replaces incoming copies and returns the traceparent value index', () => {
    const h = ['host', 'x', 'traceparent', 'old', 'accept', '*/*', 'tracestate', 'old'];
    const at = setTraceHeaders(h, 'new-tp', 'a=1');
    expect(h).toEqual(['host', 'x', 'accept', '*/*', 'traceparent', 'new-tp', 'tracestate', 'a=1']);
    expect(h[at]).toBe('new-tp');
  });
});

function span(i: number): SpanRecord {
  return { traceId: T, spanId: i.toString(16).padStart(16, '0'), parentSpanId: '', name: `s${i}`, kind: 1, start: '1', end: '2', attributes: { n: i, f: 0.5, ok: true, s: 'x' }, error: false };
}

describe('OTLP exporter', () => {
  it('encodes OTLP/JSON: hex ids, string nanos, typed attributes, no empty parent', () => {
    const doc = JSON.parse(encodeSpans([span(1)], 'svc')) as { resourceSpans: Array<{ resource: { attributes: unknown[] }; scopeSpans: Array<{ spans: Array<Record<string, unknown>> }> }> };
    const s = doc.resourceSpans[0]!.scopeSpans[0]!.spans[0]!;
    expect(doc.resourceSpans[0]!.resource.attributes).toContainEqual({ key: 'service.name', value: { stringValue: 'svc' } });
    expect(s).toMatchObject({ traceId: T, spanId: '0000000000000001', name: 's1', kind: 1, startTimeUnixNano: '1', endTimeUnixNano: '2', status: { code: 0 } });
    expect(s).not.toHaveProperty('parentSpanId');
    expect(s.attributes).toEqual([
      { key: 'n', value: { intValue: '1' } },
      { key: 'f', value: { doubleValue: 0.5 } },
      { key: 'ok', value: { boolValue: true } },
      { key: 's', value: { stringValue: 'x' } },
    ]);
  });

  it('bounded queue: spans past max_queue are dropped, the rest arrive in batches', async () => {
    const batches: number[] = [];
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        batches.push((JSON.parse(body) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: unknown[] }> }> }).resourceSpans[0]!.scopeSpans[0]!.spans.length);
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    onTestFinished(() => new Promise<void>((r) => server.close(() => r())));
    const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const exp = new OtlpExporter({ endpoint, serviceName: 't', maxQueue: 10, flushMs: 60_000 });
    for (let i = 0; i < 15; i++) exp.add(span(i));
    expect(exp.queued).toBe(10);
    await exp.shutdown();
    expect(exp.dropped).toBe(5);
    expect(exp.exported).toBe(10);
    expect(batches).toEqual([10]);
    // A full batch starts a send at once; queued spans wait behind it, none beyond max_queue.
    batches.length = 0;
    const small = new OtlpExporter({ endpoint, serviceName: 't', maxQueue: 6, maxBatch: 4, flushMs: 60_000 });
    for (let i = 0; i < 20; i++) small.add(span(i));
    await small.shutdown();
    expect(small.exported + small.dropped).toBe(20);
    expect(small.exported).toBe(10); // 4 sent at once, then 6 waiting
    expect(batches.reduce((a, b) => a + b, 0)).toBe(10);
    expect(Math.max(...batches)).toBeLessThanOrEqual(4);
  });

  it('a collector that is down: the batch is dropped and counted, add() never throws', async () => {
    const exp = new OtlpExporter({ endpoint: 'http://127.0.0.1:1', serviceName: 't', flushMs: 60_000 });
    exp.add(span(1));
    exp.add(span(2));
    await exp.flush();
    expect(exp.dropped).toBe(2);
    expect(exp.queued).toBe(0);
  });
});
