// Compile-only type tests for TCP stream scripts of runtime-api (run by types.test.ts).
import type { StreamAccessContext, StreamAccessHandler, StreamLogContext, StreamLogHandler } from 'scriptgate/runtime-api';

export const onlyLocal: StreamAccessHandler = (ctx) => {
  const phase: 'access' = ctx.phase;
  if (ctx.connection.clientIp !== '127.0.0.1') return ctx.exit(403);
  if (ctx.connection.tls && ctx.connection.serverName === 'db.example.test') ctx.upstream = 'db';
  if (ctx.connection.clientCertificate && !ctx.connection.clientCertificate.subject.startsWith('CN=')) return ctx.exit(403);
  ctx.vars.port = ctx.connection.clientPort;
  void phase;
};

export const logBytes: StreamLogHandler = (ctx) => {
  ctx.log.info('stream closed', { status: ctx.response.status, sent: ctx.bytesSent, received: ctx.bytesReceived, ms: ctx.timings.total, target: ctx.upstreamAddress, error: ctx.error });
};

export function forbidden(access: StreamAccessContext, log: StreamLogContext): void {
  // @ts-expect-error a stream has no HTTP request
  void access.request;
  // @ts-expect-error a stream refusal has no response body
  access.exit(403, { body: 'no' });
  // @ts-expect-error the connection is read-only
  access.connection.clientIp = '10.0.0.1';
  // @ts-expect-error log cannot refuse
  log.exit(403);
  // @ts-expect-error log cannot change the upstream
  log.upstream = 'other';
}
