/**
 * Request-body counting and size limit. Used for chunked request bodies and whenever
 * `limits.max_body_size` is set; bodies are streamed, never buffered. When the limit is passed the
 * stream errors with PRX_ERR_BODY_TOO_LARGE (413 if the response has not started).
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { ProxyError } from '../errors.ts';

export interface BodyCounter extends Transform {
  /** Body bytes seen so far. */
  bytes: number;
}

/** Pipes `req` through a counter; `max` 0 = unlimited; `limitName` names the limit in the 413. Client errors/aborts propagate. */
export function limitBody(req: IncomingMessage, max: number, limitName?: string): BodyCounter {
  const counter = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      counter.bytes += chunk.length;
      if (max > 0 && counter.bytes > max) return cb(limitName ? new ProxyError('PRX_ERR_BODY_TOO_LARGE', `the request body is larger than ${limitName} (${max} bytes)`) : new ProxyError('PRX_ERR_BODY_TOO_LARGE'));
      cb(null, chunk);
    },
  }) as BodyCounter;
  counter.bytes = 0;
  // undici destroys the body it was given with the error that ended the try (a client abort too):
  // that must not be an unhandled 'error' event, which would end the process. Failures reach the
  // exchange through undici's handler, or through its own readers' listeners.
  counter.on('error', ignoreError);
  req.on('error', (err) => counter.destroy(err));
  req.on('aborted', () => counter.destroy(new ProxyError('PRX_ERR_CLIENT_ABORTED')));
  req.pipe(counter);
  return counter;
}

/** An 'error' listener that only keeps an error from being unhandled (see limitBody). */
export function ignoreError(): void {}
