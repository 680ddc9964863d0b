import { describe, expect, it } from 'vitest';
import { encodeGrpcMessage, grpcStatusForError, grpcStatusForHttp, isGrpcContentType, parseGrpcTimeout } from '../../../src/core/grpc.ts';

describe('grpc helpers', () => {
  it('recognises application/grpc and its +proto/+json/;params forms, not grpc-web', () => {
    expect(['application/grpc', 'application/grpc+proto', 'application/grpc+json', 'application/grpc;charset=utf-8'].map(isGrpcContentType)).toEqual([true, true, true, true]);
    expect(['application/grpc-web', 'application/grpc-web+proto', 'application/json', undefined].map(isGrpcContentType)).toEqual([false, false, false, false]);
  });

  it('parses grpc-timeout units into milliseconds (at least 1)', () => {
    expect(parseGrpcTimeout('250m')).toBe(250);
    expect(parseGrpcTimeout('2S')).toBe(2000);
    expect(parseGrpcTimeout('1M')).toBe(60_000);
    expect(parseGrpcTimeout('1H')).toBe(3_600_000);
    expect(parseGrpcTimeout('1500u')).toBe(2);
    expect(parseGrpcTimeout('10n')).toBe(1);
    expect([parseGrpcTimeout('123456789S'), parseGrpcTimeout('5x'), parseGrpcTimeout(''), parseGrpcTimeout(undefined)]).toEqual([undefined, undefined, undefined, undefined]);
  });

  it('maps proxy errors and HTTP statuses to gRPC statuses', () => {
    expect(grpcStatusForError('PRX_ERR_UPSTREAM_CONNECT')).toBe(14);
    expect(grpcStatusForError('PRX_ERR_NO_ROUTE')).toBe(12);
    expect(grpcStatusForError('PRX_ERR_DEADLINE')).toBe(4);
    expect(grpcStatusForError('PRX_ERR_SCRIPT')).toBe(13);
    expect([400, 401, 403, 404, 429, 502, 503, 504, 500].map(grpcStatusForHttp)).toEqual([13, 16, 7, 12, 14, 14, 14, 14, 2]);
  });

  it('percent-encodes grpc-message outside printable ASCII, and %', () => {
    expect(encodeGrpcMessage('ok: 100% \u00e9\n')).toBe('ok: 100%25 %C3%A9%0A');
  });
});
