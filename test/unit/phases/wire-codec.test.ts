import { describe, expect, it } from 'vitest';
import { headerLines, initRecord, responseRecord } from '../../../src/phases/wire-codec.ts';

describe('wire codec', () => {
  it('headerLines reads a joined header list, including an empty one and empty values', () => {
    expect(headerLines('', 'h')).toEqual([]);
    expect(headerLines('x-a\n1\nx-empty\n', 'h')).toEqual(['x-a', '1', 'x-empty', '']);
  });
  it('headerLines refuses anything that is not name/value pairs', () => {
    expect(() => headerLines('x-a', 'response headers')).toThrow(expect.objectContaining({ code: 'PRX_ERR_SCRIPT_RESULT', message: 'response headers: malformed header list from the sandbox' }));
    expect(() => headerLines(['x-a', '1'], 'h')).toThrow(expect.objectContaining({ code: 'PRX_ERR_SCRIPT_RESULT' }));
  });
  it('records join fields with LF', () => {
    expect(responseRecord({ status: 204, headers: [] })).toBe('204');
    expect(responseRecord({ status: 200, headers: ['a', 'b'] })).toBe('200\na\nb');
    const init = initRecord(3, { id: 'r1', method: 'GET', path: '/p', query: 'q=1', httpVersion: '1.1', scheme: 'http', clientIp: '127.0.0.1', clientPort: 5, headers: ['host', 'x'], route: 'r' } as never);
    // An empty TLS field over plain HTTP, then the headers.
    expect(init).toBe('3\nr1\nGET\n/p\nq=1\n1.1\nhttp\n127.0.0.1\n5\n\nhost\nx');
    const tls = initRecord(3, { id: 'r1', method: 'GET', path: '/p', query: '', httpVersion: '2.0', scheme: 'https', clientIp: '::1', clientPort: 5, tls: '{"n":"a.test"}', headers: [], route: 'r' } as never);
    expect(tls).toBe('3\nr1\nGET\n/p\n\n2.0\nhttps\n::1\n5\n{"n":"a.test"}');
  });
});
