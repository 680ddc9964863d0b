import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { websocketAccept } from '../../../src/core/h2-websocket.ts';
import { plainRequestHead } from '../../../src/core/plain-upgrade.ts';
import { isWebSocketUpgrade } from '../../../src/core/websocket.ts';

function req(rawHeaders: string[], method = 'POST', url = '/a?b=1'): IncomingMessage {
  const headers: Record<string, string> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) headers[rawHeaders[i]!.toLowerCase()] ??= rawHeaders[i + 1]!;
  return { method, url, httpVersion: '1.1', rawHeaders, headers } as unknown as IncomingMessage;
}

describe('isWebSocketUpgrade', () => {
  it('is true when websocket is among the offered protocols, in any case and with a version', () => {
    expect(isWebSocketUpgrade(req(['Upgrade', 'websocket']))).toBe(true);
    expect(isWebSocketUpgrade(req(['Upgrade', 'WebSocket']))).toBe(true);
    expect(isWebSocketUpgrade(req(['Upgrade', 'h2c, websocket/13']))).toBe(true);
  });

  it('is false for h2c, TLS, unknown tokens, look-alikes and no Upgrade', () => {
    expect(isWebSocketUpgrade(req(['Upgrade', 'h2c']))).toBe(false);
    expect(isWebSocketUpgrade(req(['Upgrade', 'TLS/1.2']))).toBe(false);
    expect(isWebSocketUpgrade(req(['Upgrade', 'websockets']))).toBe(false);
    expect(isWebSocketUpgrade(req([]))).toBe(false);
  });
});

describe('plainRequestHead', () => {
  it('writes the request back without the upgrade token, keeping every other header and its order', () => {
    const head = plainRequestHead(req(['Host', 'h.test', 'Connection', 'Upgrade, HTTP2-Settings', 'Upgrade', 'h2c', 'HTTP2-Settings', 'AAMA', 'X-A', '1', 'x-a', '2', 'Content-Length', '5']));
    expect(head.toString('latin1')).toBe('POST /a?b=1 HTTP/1.1\r\nHost: h.test\r\nConnection: HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMA\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 5\r\n\r\n');
  });

  it('drops a Connection header left empty and keeps close from another one', () => {
    const head = plainRequestHead(req(['Host', 'h', 'Connection', 'upgrade', 'Connection', 'UPGRADE , close', 'Upgrade', 'foo'], 'GET', '/'));
    expect(head.toString('latin1')).toBe('GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nUpgrade: foo\r\n\r\n');
  });

  it('keeps latin1 header bytes as they were read', () => {
    const head = plainRequestHead(req(['Host', 'h', 'X-Name', 'caf\u00e9'], 'GET', '/'));
    expect(head.includes(Buffer.from([0x63, 0x61, 0x66, 0xe9]))).toBe(true);
  });
});

describe('websocketAccept', () => {
  it('is the RFC 6455 example value', () => {
    expect(websocketAccept('dGhlIHNhbXBsZSBub25jZQ==')).toBe('s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  });
});
