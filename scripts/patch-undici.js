#!/usr/bin/env node
// Runs at `npm install` (postinstall): fixes to undici 7, each applied once (idempotent), each
// checked (exits non-zero when the code it expects is not there: a different undici; check whether
// the bug is still present before changing this).
//
// 1. lib/dispatcher/client-h2.js: the HTTP/2 client completed a response the moment its trailers
//    arrived and dropped the DATA still buffered in the stream (a paused stream, i.e. any response
//    bigger than the client reads at once): gRPC replies and other HTTP/2 responses with trailers
//    came through the proxy truncated, or never finished. The fix keeps the trailers and completes
//    on the stream's 'end', after the last byte, as undici 8 does (undici 8 needs Node 22).
//    Also there: when an HTTP/1.1 client dropped a half-sent body to an HTTP/2 upstream, the
//    upstream's HEADERS for the stream undici had already reset made node create a stream object
//    no one listened to, whose 'error' ended the proxy: such streams are now closed with a listener,
//    and a no-op 'error' listener stays on every request stream too.
//    And: a graceful GOAWAY (NO_ERROR) from an origin tore the session down at once, killing the
//    streams the origin was still answering (502s, and a healthy target ejected); those streams now
//    finish, and new requests wait for, or go to, a new connection. And: a POST or a streamed body
//    waited until no other request ran on the HTTP/2 connection (an HTTP/1 pipelining rule), so
//    gRPC calls went one stream per connection at a time, behind any long-lived stream.
//    And: an aborted stream whose request body was still being piped in (a gRPC call answered by
//    a non-gRPC response while its client was still sending) was never reset: node drops
//    close()'s RST_STREAM in that state, so it is destroyed with an AbortError (CANCEL) instead.
// 2. lib/dispatcher/client-h1.js: an unsolicited `100 Continue` from an origin destroyed the
//    connection (a 502), though RFC 9110 §15.2 says a client MUST parse any 1xx before the final
//    response; it is now skipped like 102 and 103. And: a socket error (ECONNRESET) is marked with
//    the bytes its connection had read, so the proxy can tell a reused keep-alive connection's
//    reset (resent) from a target that resets a fresh connection (a failure).
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const root = path.dirname(require.resolve('undici/package.json'));

const patches = [
  {
    file: 'lib/dispatcher/client-h2.js',
    mark: 'scriptgateTrailers',
    what: 'HTTP/2 responses with trailers keep their whole body',
    edits: [
      [
        `    if (responseReceived) {
      if (!request.aborted && !request.completed) {
        request.onComplete({})
      }`,
        `    if (responseReceived) {
      if (!request.aborted && !request.completed) {
        request.onComplete(stream.scriptgateTrailers || {})
      }`,
      ],
      [
        `    stream.removeAllListeners('data')
    request.onComplete(trailers)
  })`,
        `    // scriptgate: complete on 'end', once the DATA still buffered has been read.
    stream.scriptgateTrailers = trailers
  })`,
      ],
    ],
  },
  {
    file: 'lib/dispatcher/client-h2.js',
    mark: "undici's one-shot listener",
    what: 'an HTTP/2 request stream error is never an unhandled error event',
    edits: [
      [
        `  client[kSocket] = socket
  session[kOpenStreams] = 0
  session[kClient] = client
`,
        `  client[kSocket] = socket
  session[kOpenStreams] = 0
  session[kClient] = client
  // scriptgate: HEADERS for a stream this side already reset (a client that aborted its upload)
  // make node create a stream object nobody listens to; its error ended the process. Close it.
  session.on('stream', (orphan) => {
    orphan.on('error', () => {})
    orphan.close(http2.constants.NGHTTP2_CANCEL)
  })
`,
      ],
      [
        `  // Increment counter as we have new streams open
  ++session[kOpenStreams]
`,
        `  // Increment counter as we have new streams open
  ++session[kOpenStreams]
  // scriptgate: an 'error' after undici's one-shot listener must not be an unhandled 'error' event.
  stream.on('error', () => {})
`,
      ],
    ],
  },
  {
    file: 'lib/dispatcher/client-h1.js',
    mark: 'scriptgate: an unsolicited 100',
    what: 'an unsolicited 100 Continue is skipped like any 1xx',
    edits: [
      [
        `    if (statusCode === 100) {
      util.destroy(socket, new SocketError('bad response', util.getSocketInfo(socket)))
      return -1
    }
`,
        `    // scriptgate: an unsolicited 100 is an informational response like any other 1xx (RFC 9110 §15.2).
`,
      ],
    ],
  },
  {
    file: 'lib/dispatcher/client-h2.js',
    mark: 'scriptgateGoingAway',
    what: "an origin's graceful GOAWAY lets its streams finish",
    edits: [
      [
        `function onHttp2SessionGoAway (errorCode) {
`,
        `function onHttp2SessionGoAway (errorCode) {
  // scriptgate: a graceful GOAWAY (NO_ERROR: nginx's keepalive_requests, gRPC's max connection age)
  // lets the streams already open finish (RFC 9113 §6.8). The session takes no new request (busy)
  // and closes once they are done; the client then connects anew for whatever waits.
  if (errorCode === 0 && !this.destroyed) {
    this.scriptgateGoingAway = true
    this.close()
    return
  }
`,
      ],
      [
        `    busy (request) {
      if (request != null) {`,
        `    busy (request) {
      if (session.scriptgateGoingAway) return true
      if (request != null) {`,
      ],
    ],
  },
  {
    file: 'lib/dispatcher/client-h2.js',
    mark: 'scriptgate: HTTP/2 streams are independent',
    what: 'POSTs and streamed bodies share an HTTP/2 connection as concurrent streams',
    edits: [
      [
        `          // Non-idempotent request cannot be retried.
          // Ensure that no other requests are inflight and
          // could cause failure.
          if (request.idempotent === false) return true`,
        `          // scriptgate: HTTP/2 streams are independent: a failed stream fails only its own request,
          // so a POST (every gRPC call) or a streamed body need not wait for the others to finish
          // (they did, one stream per connection at a time, behind any long-lived stream).`,
      ],
      [
        `          if (util.bodyLength(request.body) !== 0 &&
            (util.isStream(request.body) || util.isAsyncIterable(request.body) || util.isFormDataLike(request.body))) return true`,
        ``,
      ],
      [
        `      // On Abort, we close the stream to send RST_STREAM frame
      stream.close()`,
        `      // On Abort, we close the stream to send RST_STREAM frame
      // scriptgate: with CANCEL (RFC 9113 §8.4; gRPC servers read it as a cancelled call), not NO_ERROR.
      stream.close(http2.constants.NGHTTP2_CANCEL)`,
      ],
    ],
  },
  {
    file: 'lib/dispatcher/client-h2.js',
    mark: 'scriptgateCancelError',
    what: 'an aborted stream whose request body is still piped in is reset, not leaked',
    edits: [
      [
        `      stream.close(http2.constants.NGHTTP2_CANCEL)`,
        `      // scriptgate: while a request body is still piped into the stream (a gRPC call whose client
      // has not half-closed), node loses close()'s RST_STREAM and the origin's stream stays open
      // for the life of the connection; destroy() sends it (CANCEL for an AbortError).
      if (stream.writableEnded) stream.close(http2.constants.NGHTTP2_CANCEL)
      else stream.destroy(scriptgateCancelError())`,
      ],
      [
        `const { pipeline } = require('node:stream')
`,
        `const { pipeline } = require('node:stream')

/** scriptgate: an error node's HTTP/2 maps to RST_STREAM CANCEL (its internal AbortError class). */
function scriptgateCancelError () {
  let made
  const probe = new (require('node:stream').Writable)({ destroy (err, cb) { made = err; cb() } })
  probe.on('error', () => {})
  require('node:stream').addAbortSignal(AbortSignal.abort(), probe)
  return made
}
`,
      ],
    ],
  },
  {
    file: 'lib/dispatcher/client-h1.js',
    mark: 'scriptgateBytesRead',
    what: 'a socket error says whether its connection had answered before (a reused keep-alive one)',
    edits: [
      [
        `  this[kError] = err

  this[kClient][kOnError](err)
}`,
        `  // scriptgate: how much this connection had read when it failed: more than nothing means it had
  // answered before, so a reset under a new request is the keep-alive race (resent by the proxy).
  if (err && typeof err === 'object' && err.scriptgateBytesRead === undefined) err.scriptgateBytesRead = this.bytesRead

  this[kError] = err

  this[kClient][kOnError](err)
}`,
      ],
    ],
  },
];

for (const p of patches) {
  const file = path.join(root, p.file);
  const src = readFileSync(file, 'utf8');
  if (src.includes(p.mark)) continue;
  let out = src;
  for (const [from, to] of p.edits) {
    if (!out.includes(from)) {
      console.error(`scripts/patch-undici.js: ${file} does not contain the code this patch expects; "${p.what}" was not applied`);
      process.exit(1);
    }
    out = out.replace(from, to);
  }
  writeFileSync(file, out);
  console.log(`scripts/patch-undici.js: patched ${path.relative(process.cwd(), file)} (${p.what})`);
}
