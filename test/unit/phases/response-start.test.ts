/**
 * responseStart: header_filter and the first body_filter call in one crossing, with the same
 * results as headerFilter + bodyFilter (real esbuild, real isolates).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { config, fixture, request, type Fixture } from './fixture.ts';

let f: Fixture;
beforeAll(async () => {
  f = await fixture({
    'scriptgate.yaml': config(
      `  - name: both\n    match: { path_prefix: /both }\n    header_filter_by_script: hf.ts\n    body_filter_by_script: bf.ts\n` +
        `  - name: body\n    match: { path_prefix: /body }\n    body_filter_by_script: bf.ts\n` +
        `  - name: head\n    match: { path_prefix: /head }\n    header_filter_by_script: hf.ts\n` +
        `  - name: quiet\n    match: { path_prefix: /quiet }\n    header_filter_by_script: noop.ts\n    body_filter_by_script: noop.ts\n` +
        `  - name: bad\n    match: { path_prefix: /bad }\n    header_filter_by_script: throw.ts\n    body_filter_by_script: bf.ts\n`,
    ),
    'hf.ts': 'export default function (ctx: any) { ctx.response.headers.set("x-hf", "1"); ctx.response.status = 201; ctx.log.info("hf ran"); }',
    'bf.ts': 'export default function (ctx: any, chunk: string, eof: boolean) { return `[${ctx.response.status}:${ctx.response.headers.get("x-hf") ?? "-"}:${chunk}:${eof}]`; }',
    'noop.ts': 'export default function () {}',
    'throw.ts': 'export default function () { throw new Error("boom"); }',
  });
});
afterAll(() => f.cleanup());

const HEAD = { status: 200, headers: ['content-type', 'text/plain'] };

describe('responseStart', () => {
  it('runs header_filter then body_filter on the chunk with eof in one call', () => {
    const s = f.host.route(0)!.open(request(), f.logger);
    const r = s.responseStart!(HEAD, Buffer.from('hello'), true);
    expect(r.head).toEqual({ status: 201, headers: ['content-type', 'text/plain', 'x-hf', '1'] });
    expect(r.body?.toString()).toBe('[201:1:hello:true]');
    expect(f.logs.some((l) => l.msg === 'hf ran')).toBe(true);
    s.close();
  });

  it('body_filter alone sees the recorded head; header_filter alone leaves the body', () => {
    const s = f.host.route(1)!.open(request(), f.logger);
    const r = s.responseStart!(HEAD, Buffer.from('x'), false);
    expect(r.head).toBeUndefined();
    expect(r.body?.toString()).toBe('[200:-:x:false]');
    expect(s.bodyFilter(Buffer.alloc(0), true)?.toString()).toBe('[200:-::true]');
    s.close();
    const h = f.host.route(2)!.open(request(), f.logger);
    const r2 = h.responseStart!(HEAD, Buffer.from('x'), true);
    expect(r2.head?.status).toBe(201);
    expect(r2.body).toBeUndefined();
    h.close();
  });

  it('unchanged head and body come back as undefined; a later chunk still filters', () => {
    const s = f.host.route(3)!.open(request(), f.logger);
    expect(s.responseStart!(HEAD, Buffer.from('abc'), false)).toEqual({ head: undefined, body: undefined });
    expect(s.bodyFilter(Buffer.from('def'), true)).toBeUndefined();
    s.close();
  });

  it('a UTF-8 character split at the first chunk is carried into the next', () => {
    const s = f.host.route(1)!.open(request(), f.logger);
    const euro = Buffer.from('€');
    const r = s.responseStart!(HEAD, euro.subarray(0, 2), false);
    expect(r.body?.toString()).toBe('[200:-::false]');
    expect(s.bodyFilter(euro.subarray(2), true)?.toString()).toBe('[200:-:€:true]');
    s.close();
  });

  it('no chunk and no eof runs header_filter only', () => {
    const s = f.host.route(0)!.open(request(), f.logger);
    const r = s.responseStart!(HEAD, undefined, false);
    expect(r.head?.status).toBe(201);
    expect(r.body).toBeUndefined();
    expect(s.bodyFilter(Buffer.from('z'), true)?.toString()).toBe('[201:1:z:true]');
    s.close();
  });

  it('a header_filter throw fails the call with the script file and skips body_filter', () => {
    const s = f.host.route(4)!.open(request(), f.logger);
    expect(() => s.responseStart!(HEAD, Buffer.from('x'), true)).toThrow(expect.objectContaining({ code: 'PRX_ERR_SCRIPT', message: expect.stringContaining('throw.ts:1') }));
    s.close();
  });
});
