import { describe, expect, it } from 'vitest';
import { listenerLimits, statusForClientError } from '../../../src/core/listener.ts';
import { parseConfig } from '../../../src/config/load.ts';

const { config } = parseConfig('listen:\n  - address: 127.0.0.1:0\n    limits: { max_header_size: 4kb }\nlimits: { max_uri_size: 1kb }\nroutes: [{}]\n', 'l.yaml');
const limits = config.limits;

describe('statusForClientError', () => {
  const err = (code: string, rawPacket?: Buffer) => Object.assign(new Error(code), { code, rawPacket });
  it('header overflow with a long request line → 414, with a short one → 431', () => {
    expect(statusForClientError(err('HPE_HEADER_OVERFLOW', Buffer.from(`GET /${'a'.repeat(2000)}`)), limits)).toBe(414);
    expect(statusForClientError(err('HPE_HEADER_OVERFLOW', Buffer.from('GET / HTTP/1.1\r\nX: y')), limits)).toBe(431);
  });
  it('an unknown upper-case method → 501, any other bad method → 400', () => {
    const at = (line: string, bytesParsed: number) => Object.assign(err('HPE_INVALID_METHOD', Buffer.from(line)), { bytesParsed });
    expect(statusForClientError(at('FROB / HTTP/1.1\r\nHost: a\r\n\r\n', 1), limits)).toBe(501);
    expect(statusForClientError(at('get / HTTP/1.1\r\n', 0), limits)).toBe(400);
    expect(statusForClientError(at('\x16\x03\x01\x02', 0), limits)).toBe(400);
    // Pipelined behind a good request: the line of the bad one counts.
    expect(statusForClientError(at('GET / HTTP/1.1\r\nHost: a\r\n\r\nFROB / HTTP/1.1\r\n', 30), limits)).toBe(501);
  });
  it('a well-formed version other than 1.x → 505, a malformed one → 400', () => {
    const at = (line: string) => Object.assign(err('HPE_INVALID_VERSION', Buffer.from(line)), { bytesParsed: line.indexOf('HTTP/') + 6 });
    expect(statusForClientError(at('GET / HTTP/3.0\r\nHost: a\r\n\r\n'), limits)).toBe(505);
    expect(statusForClientError(at('GET / HTTP/1.1x\r\nHost: a\r\n\r\n'), limits)).toBe(400);
  });
  it('timeouts → 408, anything else → 400', () => {
    expect(statusForClientError(err('ERR_HTTP_REQUEST_TIMEOUT'), limits)).toBe(408);
    expect(statusForClientError(err('HPE_INVALID_HEADER_TOKEN'), limits)).toBe(400);
  });
});

describe('listenerLimits', () => {
  it('a listener own limits override the top-level ones field by field', () => {
    const l = listenerLimits(config.listen[0]!, limits);
    expect(l.max_header_size).toBe(4096);
    expect(l.max_uri_size).toBe(1024);
    expect(l.client_header_timeout).toBe(10_000);
  });
});
