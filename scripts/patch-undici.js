#!/usr/bin/env node
// Runs at `npm install` (postinstall): fixes undici 7's HTTP/2 client, which completes a response
// the moment its trailers arrive and drops the DATA still buffered in the stream (a paused stream,
// i.e. any response bigger than the client reads at once): gRPC replies and other HTTP/2 responses
// with trailers came through the proxy truncated, or never finished. The fix keeps the trailers
// and completes the response on the stream's 'end', after the last byte, as undici 8 does (undici
// 8 needs Node 22). Idempotent; says what it did; exits non-zero when the code it expects is not
// there (a different undici: check whether the bug is still present before changing this).
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const file = path.join(path.dirname(require.resolve('undici/package.json')), 'lib/dispatcher/client-h2.js');
const MARK = 'scriptgateTrailers';
const src = readFileSync(file, 'utf8');
if (src.includes(MARK)) process.exit(0);

const edits = [
  [
    `    if (responseReceived) {
      if (!request.aborted && !request.completed) {
        request.onComplete({})
      }`,
    `    if (responseReceived) {
      if (!request.aborted && !request.completed) {
        request.onComplete(stream.${MARK} || {})
      }`,
  ],
  [
    `    stream.removeAllListeners('data')
    request.onComplete(trailers)
  })`,
    `    // scriptgate: complete on 'end', once the DATA still buffered has been read.
    stream.${MARK} = trailers
  })`,
  ],
];
let out = src;
for (const [from, to] of edits) {
  if (!out.includes(from)) {
    console.error(`scripts/patch-undici.js: ${file} does not contain the code this patch expects; undici's HTTP/2 trailers fix was not applied`);
    process.exit(1);
  }
  out = out.replace(from, to);
}
writeFileSync(file, out);
console.log(`scripts/patch-undici.js: patched ${path.relative(process.cwd(), file)} (HTTP/2 responses with trailers keep their whole body)`);
