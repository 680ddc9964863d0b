/**
 * Maps an undici/socket error of an upstream request to our error table (502 for refused or
 * broken connections, 504 for timeouts). Runs when an upstream try fails.
 */
import { ProxyError } from '../errors.ts';

const CONNECT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);

export function mapUpstreamError(err: Error): ProxyError {
  const code = (err as { code?: string }).code ?? '';
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return new ProxyError('PRX_ERR_UPSTREAM_CONNECT_TIMEOUT', err.message, { cause: err });
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return new ProxyError('PRX_ERR_UPSTREAM_TIMEOUT', err.message, { cause: err });
  // The client's side failed the try (body too large, aborted, stalled): not the upstream's fault.
  if ((err instanceof ProxyError && err.source === 'downstream') || code === 'PRX_ERR_BODY_TOO_LARGE' || code === 'PRX_ERR_CLIENT_ABORTED' || code === 'PRX_ERR_CLIENT_BODY_TIMEOUT') return err as ProxyError;
  // undici refused to build the request (a header value it rejects): not the upstream's fault, never retried.
  if (code === 'UND_ERR_INVALID_ARG') return new ProxyError('PRX_ERR_INTERNAL', `the upstream request could not be built: ${err.message}`, { cause: err });
  if (CONNECT_CODES.has(code)) return new ProxyError('PRX_ERR_UPSTREAM_CONNECT', err.message, { cause: err });
  // A TLS failure while connecting (untrusted or mismatched certificate, alert from the origin).
  if (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || code.includes('CERT') || code === 'DEPTH_ZERO_SELF_SIGNED_CERT' || code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE') {
    return new ProxyError('PRX_ERR_UPSTREAM_TLS', `TLS handshake failed: ${err.message} (${code})`, { cause: err });
  }
  return new ProxyError('PRX_ERR_UPSTREAM_PROTOCOL', err.message || code, { cause: err });
}
