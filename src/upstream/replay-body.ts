/**
 * Reads a small request body whole so that a retry can send it again (see shouldBufferBody in
 * retry-policy.ts, which bounds its size by Content-Length). Resolves with the bytes; rejects with
 * the stream's error (a body-limit or client-abort ProxyError, for example).
 */
import type { Readable } from 'node:stream';

export function readReplayBody(stream: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
    stream.once('close', () => reject(new Error('request body closed before its end')));
  });
}
