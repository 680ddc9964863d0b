/**
 * Every error scriptgate reports, in one table: a stable code, the HTTP status a client sees when
 * the error ends its request, where it came from (pingora's `esource`), and whether trying another
 * upstream target may help. Callers match on `err.code`, never on `instanceof`, because errors also
 * come back from isolates as plain data.
 *
 * @example
 *   throw new ProxyError('PRX_ERR_UPSTREAM_CONNECT', 'connect ECONNREFUSED 127.0.0.1:9001', { cause });
 */
export const ERRORS = {
  PRX_ERR_CONFIG: { status: 500, source: 'internal', retryable: false, meaning: 'the configuration is invalid' },
  PRX_ERR_SCRIPT_COMPILE: { status: 500, source: 'script', retryable: false, meaning: 'a phase script does not compile' },
  PRX_ERR_SCRIPT: { status: 500, source: 'script', retryable: false, meaning: 'a phase script threw' },
  PRX_ERR_SCRIPT_TIMEOUT: { status: 500, source: 'script', retryable: false, meaning: 'a phase script ran past its tenant cpu_ms' },
  PRX_ERR_SCRIPT_MEMORY: { status: 500, source: 'script', retryable: false, meaning: "a phase script exhausted its tenant's memory_mb" },
  PRX_ERR_SCRIPT_RESULT: { status: 500, source: 'script', retryable: false, meaning: 'a phase script returned a value that is too large or of the wrong type' },
  PRX_ERR_TENANT_THROTTLED: { status: 503, source: 'script', retryable: false, meaning: "the route's tenant used more script CPU than its cpu_budget_ms_per_s; its routes get 503 until it is back under" },
  PRX_ERR_CLOSED_BY_SCRIPT: { status: 444, source: 'script', retryable: false, meaning: "a script's ctx.exit(444) closed the connection without a response (nginx's 444)" },
  PRX_ERR_PHASE_FORBIDDEN: { status: 500, source: 'script', retryable: false, meaning: 'a script called an API its phase may not use' },
  PRX_ERR_NO_ROUTE: { status: 404, source: 'downstream', retryable: false, meaning: 'no route matches the host, path and method' },
  PRX_ERR_BAD_REQUEST: { status: 400, source: 'downstream', retryable: false, meaning: 'the request is malformed' },
  PRX_ERR_URI_TOO_LONG: { status: 414, source: 'downstream', retryable: false, meaning: 'the request line is longer than the limit' },
  PRX_ERR_HEADERS_TOO_LARGE: { status: 431, source: 'downstream', retryable: false, meaning: 'the request head is larger than limits.max_header_size' },
  PRX_ERR_BODY_TOO_LARGE: { status: 413, source: 'downstream', retryable: false, meaning: 'the request body is larger than limits.max_body_size' },
  PRX_ERR_METHOD_NOT_ALLOWED: { status: 405, source: 'downstream', retryable: false, meaning: 'the method is not offered by the proxy (TRACE, CONNECT)' },
  PRX_ERR_EXPECTATION_FAILED: { status: 417, source: 'downstream', retryable: false, meaning: 'the request has an Expect other than 100-continue' },
  PRX_ERR_NOT_IMPLEMENTED: { status: 501, source: 'downstream', retryable: false, meaning: 'the request uses a method or transfer coding the proxy does not implement' },
  PRX_ERR_VERSION_NOT_SUPPORTED: { status: 505, source: 'downstream', retryable: false, meaning: 'the request line names an HTTP version other than 1.0 or 1.1' },
  PRX_ERR_CLIENT_TIMEOUT: { status: 408, source: 'downstream', retryable: false, meaning: 'the client did not send its request head in time' },
  PRX_ERR_CLIENT_SEND_TIMEOUT: { status: 408, source: 'downstream', retryable: false, meaning: 'the client took no response bytes for limits.send_timeout; the response was cut' },
  PRX_ERR_CLIENT_BODY_TIMEOUT: { status: 408, source: 'downstream', retryable: false, meaning: 'the client sent no request body bytes for limits.client_body_timeout' },
  PRX_ERR_CLIENT_ABORTED: { status: 499, source: 'downstream', retryable: false, meaning: 'the client closed the connection before the response was complete' },
  PRX_ERR_NO_TARGET: { status: 503, source: 'upstream', retryable: false, meaning: 'the upstream has no target to send to' },
  PRX_ERR_UPSTREAM_CONNECT: { status: 502, source: 'upstream', retryable: true, meaning: 'connecting to the upstream target failed' },
  PRX_ERR_UPSTREAM_TLS: { status: 502, source: 'upstream', retryable: true, meaning: 'the TLS handshake with the upstream target failed (untrusted certificate, name mismatch, or no client certificate)' },
  PRX_ERR_UPSTREAM_CONNECT_TIMEOUT: { status: 504, source: 'upstream', retryable: true, meaning: 'connecting to the upstream target timed out' },
  PRX_ERR_UPSTREAM_TIMEOUT: { status: 504, source: 'upstream', retryable: false, meaning: 'the upstream did not answer within timeouts.read' },
  PRX_ERR_UPSTREAM_PROTOCOL: { status: 502, source: 'upstream', retryable: false, meaning: 'the upstream sent an invalid response or closed the connection' },
  PRX_ERR_DEADLINE: { status: 504, source: 'downstream', retryable: false, meaning: "the request's deadline (grpc-timeout) passed before its response was complete" },
  PRX_ERR_IDLE_TIMEOUT: { status: 504, source: 'downstream', retryable: false, meaning: 'a tunnel (WebSocket or TCP stream) carried no data either way for its idle timeout and was closed' },
  PRX_ERR_STREAM_REFUSED: { status: 403, source: 'script', retryable: false, meaning: "the stream's access_by_script refused the connection (ctx.exit())" },
  PRX_ERR_INTERNAL: { status: 500, source: 'internal', retryable: false, meaning: 'a bug in scriptgate' },
} as const;

export type ErrorCode = keyof typeof ERRORS;
export type ErrorSource = (typeof ERRORS)[ErrorCode]['source'];

/** An error with a stable code; status, source and retryability come from the table above. */
export class ProxyError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly source: ErrorSource;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string = ERRORS[code].meaning, options: { cause?: unknown; status?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ProxyError';
    this.code = code;
    this.status = options.status ?? ERRORS[code].status;
    this.source = ERRORS[code].source;
    this.retryable = ERRORS[code].retryable;
  }
}

/** True when `err` carries one of our codes (works for errors rebuilt from isolate data too). */
export function isProxyError(err: unknown): err is ProxyError {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string' && (err as { code: string }).code in ERRORS;
}
