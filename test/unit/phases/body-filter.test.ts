import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { incompleteTail, Utf8Chunks } from '../../../src/phases/utf8-chunks.ts';
import { config, fixture, request, type Fixture } from './fixture.ts';

describe('Utf8Chunks', () => {
  it('finds an incomplete character at the end', () => {
    expect(incompleteTail(Buffer.from('abc'))).toBe(0);
    expect(incompleteTail(Buffer.from([0x61, 0xe2, 0x82]))).toBe(2);
    expect(incompleteTail(Buffer.from([0xe2, 0x82, 0xac]))).toBe(0);
    expect(incompleteTail(Buffer.from([0xf0, 0x9f, 0x98]))).toBe(3);
    expect(incompleteTail(Buffer.from([0xf0, 0x9f, 0x98, 0x80]))).toBe(0);
    expect(incompleteTail(Buffer.from([0xc3]))).toBe(1);
  });
  it('never loses or duplicates bytes, even for invalid UTF-8', () => {
    const input = Buffer.concat([Buffer.from('a€b😀c'), Buffer.from([0xff, 0xc3, 0x28]), Buffer.from('é')]);
    for (let size = 1; size <= 5; size++) {
      const u = new Utf8Chunks();
      const out: Buffer[] = [];
      let text = '';
      for (let i = 0; i < input.length; i += size) {
        const piece = u.next(input.subarray(i, i + size), i + size >= input.length);
        out.push(piece.bytes);
        text += piece.text;
      }
      expect(Buffer.concat(out)).toEqual(input);
      expect(text).toBe(input.toString('utf8'));
    }
  });
});

let f: Fixture;
beforeAll(async () => {
  f = await fixture({
    'scriptgate.yaml': config('  - body_filter_by_script: body.ts\n'),
    'body.ts': `export default function body(ctx: any, chunk: string, eof: boolean) {
  ctx.vars.seen = ((ctx.vars.seen as string) ?? "") + "[" + chunk + "]";
  if (ctx.response.headers.get("x-mode") === "keep") return;
  if (ctx.response.headers.get("x-mode") === "big") return "y".repeat(chunk.length * 4 + (1 << 20) + 1);
  return eof ? ctx.vars.seen + "(" + ctx.response.status + ")" : "";
}
`,
  });
});
afterAll(() => f.cleanup());

describe('body_filter', () => {
  it('gets a character split across chunks whole, in the next call; sees the recorded response head', () => {
    const rs = f.host.route(0)!;
    expect(rs.has.header_filter).toBe(false);
    const s = rs.open(request(), f.logger);
    expect(s.headerFilter({ status: 201, headers: ['x-mode', 'collect'] })).toBeUndefined();
    const euro = Buffer.from('€');
    expect(s.bodyFilter(Buffer.concat([Buffer.from('a'), euro.subarray(0, 2)]), false)).toEqual(Buffer.alloc(0));
    expect(s.bodyFilter(euro.subarray(2), false)).toEqual(Buffer.alloc(0));
    expect(s.bodyFilter(Buffer.from('b'), true)!.toString()).toBe('[a][€][b](201)');
    s.close();
  });
  it('returning nothing sends exactly the bytes the text stood for', () => {
    const rs = f.host.route(0)!;
    const s = rs.open(request(), f.logger);
    s.headerFilter({ status: 200, headers: ['x-mode', 'keep'] });
    const smile = Buffer.from('😀');
    expect(s.bodyFilter(Buffer.from('plain'), false)).toBeUndefined();
    const first = s.bodyFilter(Buffer.concat([Buffer.from('x'), smile.subarray(0, 1)]), false);
    const second = s.bodyFilter(smile.subarray(1), false);
    const tail = Buffer.from([0xe2]);
    const last = s.bodyFilter(tail, true) ?? tail; // undefined: the chunk as given
    expect(Buffer.concat([first!, second!, last])).toEqual(Buffer.concat([Buffer.from('x'), smile, Buffer.from([0xe2])]));
    s.close();
  });
  it('a result larger than 4 × input + 1 MiB is PRX_ERR_SCRIPT_RESULT', () => {
    const rs = f.host.route(0)!;
    const s = rs.open(request(), f.logger);
    s.headerFilter({ status: 200, headers: ['x-mode', 'big'] });
    expect(() => s.bodyFilter(Buffer.from('abc'), false)).toThrow(expect.objectContaining({ code: 'PRX_ERR_SCRIPT_RESULT' }));
    s.close();
  });
});
