// header_filter_by_script: add the usual security headers (without overriding ones the upstream
// chose) and remove headers that advertise the upstream's software.
import type { HeaderFilterContext } from 'scriptgate/runtime-api';

const SECURITY_HEADERS: Record<string, string> = {
  'strict-transport-security': 'max-age=63072000; includeSubDomains',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'strict-origin-when-cross-origin',
  'content-security-policy': "default-src 'self'",
};

export default function headerFilter(ctx: HeaderFilterContext) {
  const headers = ctx.response.headers;
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
    if (!headers.has(name)) headers.set(name, value);
  }
  headers.delete('server');
  headers.delete('x-powered-by');
}
