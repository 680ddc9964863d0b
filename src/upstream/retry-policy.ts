/**
 * When a failed upstream try may be repeated on another target (nginx's proxy_next_upstream,
 * pingora's `fail_to_connect` / `error_while_proxy`). A failure before the request left the proxy
 * (refused, connect timeout, TLS handshake) is retried whatever the method, since the body has not
 * been read yet. A failure after it was sent (connection reset, no response head in time, a broken
 * response head) is retried only for idempotent methods and only when there was no request body or
 * it was buffered for replay. Every retry also needs: the response not started, fewer than
 * `retries` retries so far, and the first try less than `retry_timeout` ago.
 */
import type { ErrorCode } from '../errors.ts';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const BEFORE_SENT: ReadonlySet<string> = new Set<ErrorCode>(['PRX_ERR_UPSTREAM_CONNECT', 'PRX_ERR_UPSTREAM_CONNECT_TIMEOUT', 'PRX_ERR_UPSTREAM_TLS']);
const AFTER_SENT: ReadonlySet<string> = new Set<ErrorCode>(['PRX_ERR_UPSTREAM_PROTOCOL', 'PRX_ERR_UPSTREAM_TIMEOUT']);

/** How the request body travels: none, buffered (replayable) or streamed (read once). */
export type BodyMode = 'none' | 'buffered' | 'streamed';

export interface RetryLimits {
  retries: number;
  retry_timeout: number;
  retry_body_limit: number;
}

export interface FailedTry {
  code: string;
  method: string;
  body: BodyMode;
  /** Retries already made for this request. */
  retriesSoFar: number;
  /** ms since the first try was dispatched. */
  elapsedMs: number;
}

/** True when the failure counts against the target's health (its fault, not the client's). */
export function isTargetFailure(code: string): boolean {
  return BEFORE_SENT.has(code) || AFTER_SENT.has(code);
}

/** Whether another target may be tried after `f`. */
export function mayRetry(limits: RetryLimits, f: FailedTry): boolean {
  if (f.retriesSoFar >= limits.retries) return false;
  if (limits.retry_timeout > 0 && f.elapsedMs >= limits.retry_timeout) return false;
  if (BEFORE_SENT.has(f.code)) return true;
  if (!AFTER_SENT.has(f.code)) return false;
  return IDEMPOTENT.has(f.method) && f.body !== 'streamed';
}

/**
 * Why a failed try may be sent again at once, to the same target on a new connection, without
 * counting as a retry or against the target (once per request, `mayResend`):
 * - `refused`: an HTTP/2 origin refused the stream (REFUSED_STREAM, e.g. one opened after its
 *   graceful GOAWAY): RFC 9113 §8.7 guarantees it was not processed; or node could not even send
 *   its HEADERS (a frame error on a session that had just received GOAWAY).
 * - `closed`: the connection closed or reset before any response byte: the race of a reused
 *   keep-alive connection the origin had just closed (nginx resends on a cached connection's error
 *   the same way, without counting a failure).
 */
export type UnansweredTry = 'refused' | 'closed';

/**
 * The UnansweredTry an undici error of a try means, or undefined. `closed` needs undici's socket
 * facts to show a connection that had answered before (bytes read): a reused one. A new connection
 * that closes on a request is the target's failure, retried elsewhere as usual.
 */
export function unansweredTry(err: { code?: string; message?: string; socket?: { bytesRead?: number }; scriptgateBytesRead?: number }): UnansweredTry | undefined {
  const code = err.code ?? '';
  if (code === 'ERR_HTTP2_STREAM_ERROR' && /REFUSED_STREAM/.test(err.message ?? '')) return 'refused';
  // node could not send the request's HEADERS (the session had just received GOAWAY): never sent.
  if (code === 'UND_ERR_INFO' && /"frameError" received - type 1,/.test(err.message ?? '')) return 'refused';
  if (code === 'UND_ERR_SOCKET' && (err.socket?.bytesRead ?? 0) > 0) return 'closed';
  // A reset (RST instead of FIN) of a connection that had answered before (undici patch: scriptgateBytesRead).
  if ((code === 'ECONNRESET' || code === 'EPIPE') && (err.scriptgateBytesRead ?? 0) > 0) return 'closed';
  return undefined;
}

/**
 * Whether a try that ended `why` may be resent: a refused stream whenever its body can be replayed;
 * a closed connection only for idempotent methods, whose repeat is harmless should the origin
 * have seen it after all.
 */
export function mayResend(why: UnansweredTry | undefined, method: string, body: BodyMode): boolean {
  if (why === undefined || body === 'streamed') return false;
  return why === 'refused' || IDEMPOTENT.has(method);
}

/**
 * Whether to buffer a request body so that it can be replayed: only for idempotent methods (a
 * POST is never resent after it reached a target) with a Content-Length within `retry_body_limit`.
 * Also with `retries: 0`: a resend on a new connection (mayResend) needs the body too.
 */
export function shouldBufferBody(limits: RetryLimits, method: string, contentLength: string | undefined): boolean {
  if (limits.retry_body_limit === 0 || !IDEMPOTENT.has(method) || contentLength === undefined) return false;
  const n = Number(contentLength);
  return Number.isInteger(n) && n > 0 && n <= limits.retry_body_limit;
}
