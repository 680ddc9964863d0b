/**
 * gRPC over the proxy: recognising a gRPC request, reading its deadline, and answering failures
 * the way gRPC clients understand them. A gRPC client never sees an HTTP error page: errors are
 * HTTP 200 with `grpc-status`/`grpc-message` in a trailers-only response (one HEADERS frame that
 * ends the stream), or in the trailers when the response had already started.
 * Used by the exchange when a request's content-type is application/grpc (not grpc-web).
 */
import type { ServerResponse } from 'node:http';
import type { ErrorCode } from '../errors.ts';

/** gRPC status codes the proxy produces (grpc/doc/statuscodes.md). */
export const GRPC_STATUS = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** True for `application/grpc`, `application/grpc+proto`, `application/grpc;…` (grpc-web is plain HTTP to us). */
export function isGrpcContentType(contentType: string | undefined): boolean {
  if (contentType === undefined || !contentType.startsWith('application/grpc')) return false;
  const next = contentType.charCodeAt(16);
  return Number.isNaN(next) || next === 43 /* + */ || next === 59 /* ; */;
}

const TIMEOUT = /^(\d{1,8})([HMSmun])$/;
const TIMEOUT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/** `grpc-timeout` (e.g. `250m`, `2S`) in milliseconds, at least 1; undefined when absent or malformed. */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = TIMEOUT.exec(value);
  if (!m) return undefined;
  return Math.max(1, Math.ceil(Number(m[1]) * TIMEOUT_MS[m[2]!]!));
}

/** The gRPC status for a proxy error code (a failed upstream is UNAVAILABLE, a passed deadline DEADLINE_EXCEEDED). */
export function grpcStatusForError(code: ErrorCode): number {
  switch (code) {
    case 'PRX_ERR_NO_ROUTE':
      return GRPC_STATUS.UNIMPLEMENTED;
    case 'PRX_ERR_BODY_TOO_LARGE':
    case 'PRX_ERR_HEADERS_TOO_LARGE':
      return GRPC_STATUS.RESOURCE_EXHAUSTED;
    case 'PRX_ERR_DEADLINE':
      return GRPC_STATUS.DEADLINE_EXCEEDED;
    case 'PRX_ERR_NO_TARGET':
    case 'PRX_ERR_UPSTREAM_CONNECT':
    case 'PRX_ERR_UPSTREAM_CONNECT_TIMEOUT':
    case 'PRX_ERR_UPSTREAM_TIMEOUT':
    case 'PRX_ERR_UPSTREAM_PROTOCOL':
      return GRPC_STATUS.UNAVAILABLE;
    case 'PRX_ERR_CLIENT_ABORTED':
      return GRPC_STATUS.CANCELLED;
    default:
      return GRPC_STATUS.INTERNAL;
  }
}

/** The gRPC status for an HTTP status that is not a gRPC answer (the mapping in grpc/doc/http-grpc-status-mapping.md). */
export function grpcStatusForHttp(status: number): number {
  switch (status) {
    case 400:
      return GRPC_STATUS.INTERNAL;
    case 401:
      return GRPC_STATUS.UNAUTHENTICATED;
    case 403:
      return GRPC_STATUS.PERMISSION_DENIED;
    case 404:
      return GRPC_STATUS.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC_STATUS.UNAVAILABLE;
    default:
      return GRPC_STATUS.UNKNOWN;
  }
}

/** Percent-encodes a grpc-message (printable ASCII except `%` stays as is). */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message.slice(0, 1024))) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * Ends a gRPC response with `status`: trailers-only (HTTP 200, content-type application/grpc, the
 * request's X-Request-Id) when nothing was sent yet, else as trailers after what was sent. Returns
 * nothing; the response is ended either way.
 */
export function endGrpc(res: ServerResponse, requestId: string, status: number, message: string): void {
  const encoded = encodeGrpcMessage(message);
  if (!res.headersSent) {
    res.sendDate = false;
    sendTrailersOnly(res, 200, ['content-type', 'application/grpc', 'grpc-status', String(status), 'grpc-message', encoded, 'x-request-id', requestId || '-']);
    return;
  } else {
    res.addTrailers({ 'grpc-status': String(status), 'grpc-message': encoded });
  }
  res.end();
}

/**
 * Sends a head that also ends the response: over HTTP/2 one HEADERS frame with END_STREAM (what
 * gRPC calls trailers-only; `writeHead()` then `end()` would send the head without END_STREAM and
 * an empty trailer frame after it, which gRPC clients reject as "ended without gRPC status").
 */
export function sendTrailersOnly(res: ServerResponse, status: number, headers: string[]): void {
  const grouped = new Map<string, string[]>();
  for (let i = 0; i < headers.length; i += 2) {
    const list = grouped.get(headers[i]!);
    if (list) list.push(headers[i + 1]!);
    else grouped.set(headers[i]!, [headers[i + 1]!]);
  }
  res.statusCode = status;
  for (const [name, values] of grouped) res.setHeader(name, values.length === 1 ? values[0]! : values);
  res.end();
}
