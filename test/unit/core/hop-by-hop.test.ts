import { describe, expect, it } from 'vitest';
import { forwardRawHeaders, forwardResponseHeaders } from '../../../src/core/hop-by-hop.ts';

describe('forwardRawHeaders', () => {
  it('drops hop-by-hop headers and lower-cases names, keeping repeats in order', () => {
    const raw = ['Host', 'a', 'Connection', 'keep-alive', 'Keep-Alive', 't=1', 'TE', 'trailers', 'Trailer', 'X', 'Transfer-Encoding', 'chunked', 'Upgrade', 'h2c', 'Proxy-Connection', 'x', 'X-A', '1', 'x-a', '2'];
    expect(forwardRawHeaders(raw)).toEqual(['host', 'a', 'x-a', '1', 'x-a', '2']);
  });

  it('drops every header named by any Connection header', () => {
    const raw = ['Connection', 'X-One, x-Two', 'Connection', 'X-Three', 'X-One', '1', 'X-Two', '2', 'X-Three', '3', 'X-Four', '4'];
    expect(forwardRawHeaders(raw)).toEqual(['x-four', '4']);
  });

  it('drops the names in `drop`', () => {
    expect(forwardRawHeaders(['A', '1', 'B', '2'], new Set(['b']))).toEqual(['a', '1']);
  });
});

describe('forwardResponseHeaders', () => {
  it('flattens arrays (several Set-Cookie) and drops hop-by-hop and Connection-named headers', () => {
    const out = forwardResponseHeaders({
      connection: 'keep-alive, x-hop',
      'x-hop': '1',
      'keep-alive': 'timeout=5',
      'transfer-encoding': 'chunked',
      'set-cookie': ['a=1', 'b=2'],
      'content-type': 'text/plain',
      'x-none': undefined,
    });
    expect(out).toEqual(['set-cookie', 'a=1', 'set-cookie', 'b=2', 'content-type', 'text/plain']);
  });
});
