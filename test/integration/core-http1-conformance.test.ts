/**
 * HTTP/1.1 conformance of the proxy path against RFC 9110/9112 and what nginx users expect, over
 * raw sockets: message framing and smuggling defences, Expect, interim and bodiless responses,
 * Via / Max-Forwards / TRACE, hop-by-hop fields, trailers, pipelining and upstream failures.
 * (core-hostile, core-bodies, core-headers and core-upstream-errors cover the neighbouring cases.)
 */
import net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { closeServer, rawRequest, simpleConfig, startOrigin, startProxy, statusOf, type Origin } from '../helpers/servers.ts';
import { rawClient } from '../helpers/raw-client.ts';

/** An origin that also counts TCP connections, so "saw nothing" means not even a connect. */
async function watchedOrigin(handler?: Parameters<typeof startOrigin>[0]): Promise<Origin & { connections: () => number }> {
  const origin = await startOrigin(handler);
  let n = 0;
  origin.server.on('connection', () => n++);
  return Object.assign(origin, { connections: () => n });
}

/** A TCP origin that answers every connection with `reply(requestHead)` written raw. */
async function rawOrigin(reply: (socket: net.Socket, head: string) => void): Promise<{ address: string; heads: string[] }> {
  const heads: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    let buf = '';
    let answered = false;
    socket.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (answered || end < 0) return;
      answered = true;
      heads.push(buf.slice(0, end));
      reply(socket, buf.slice(0, end));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onTestFinished(() => {
    for (const s of sockets) s.destroy();
    return closeServer(server);
  });
  return { address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, heads };
}


interface Parsed {
  status: number;
  head: Array<[string, string]>;
  body: string;
  trailers: Array<[string, string]>;
  /** The body's framing ended properly (Content-Length reached, last chunk, or no body). */
  complete: boolean;
}

/** Header value(s) of a parsed response. */
function header(p: Parsed, name: string): string[] {
  return p.head.filter(([n]) => n === name).map(([, v]) => v);
}

/**
 * Parses consecutive HTTP/1.x responses from raw text. `heads` lists, per response, whether it
 * answers a HEAD request (no body). Interim (1xx) responses are returned as responses of their own.
 * A response without Content-Length or chunked reads to the end of the text (close-delimited).
 */
function parseResponses(text: string, heads: boolean[] = []): Parsed[] {
  const out: Parsed[] = [];
  let rest = text;
  let final = 0;
  while (rest.length) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const lines = rest.slice(0, end).split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!)?.[1] ?? 0);
    const head = lines.slice(1).map((l) => {
      const i = l.indexOf(':');
      return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()] as [string, string];
    });
    rest = rest.slice(end + 4);
    const p: Parsed = { status, head, body: '', trailers: [], complete: true };
    out.push(p);
    if (status < 200) continue;
    const isHead = heads[final++] ?? false;
    if (isHead || status === 204 || status === 304) continue;
    const te = header(p, 'transfer-encoding')[0];
    const cl = header(p, 'content-length')[0];
    if (te && /chunked$/i.test(te)) {
      p.complete = false;
      for (;;) {
        const eol = rest.indexOf('\r\n');
        if (eol < 0) break;
        const size = parseInt(rest.slice(0, eol), 16);
        if (Number.isNaN(size)) break;
        if (size === 0) {
          // Trailer section: field lines up to an empty line.
          const after = rest.slice(eol + 2);
          const stop = after.startsWith('\r\n') ? 0 : after.indexOf('\r\n\r\n');
          if (stop < 0) break;
          for (const l of after.slice(0, stop).split('\r\n').filter(Boolean)) {
            const i = l.indexOf(':');
            p.trailers.push([l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()]);
          }
          rest = after.slice(stop === 0 ? 2 : stop + 4);
          p.complete = true;
          break;
        }
        if (rest.length < eol + 2 + size + 2) break;
        p.body += rest.slice(eol + 2, eol + 2 + size);
        rest = rest.slice(eol + 2 + size + 2);
      }
      if (!p.complete) break;
    } else if (cl !== undefined) {
      const n = Number(cl);
      p.body = rest.slice(0, n);
      p.complete = rest.length >= n;
      rest = rest.slice(n);
    } else {
      p.body = rest;
      rest = '';
    }
  }
  return out;
}

async function proxyFor(origin: { address: string }, extra = '', top = ''): Promise<number> {
  const yaml = simpleConfig([origin as Origin], extra);
  const { port } = await startProxy(top ? yaml.replace('upstreams:', `${top}upstreams:`) : yaml);
  return port;
}

/** One GET through the proxy to an origin that answers `reply` and closes: what the client got. */
async function throughTruncatingOrigin(reply: string): Promise<{ closed: boolean; r: Parsed | undefined }> {
  const up = await rawOrigin((s) => s.end(reply));
  const port = await proxyFor(up);
  const c = rawClient(port);
  c.socket.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
  const text = await c.until(() => false);
  return { closed: c.closed(), r: parseResponses(text)[0] };
}

async function expectRefused(port: number, origin: Origin & { connections: () => number }, raw: string, statuses: number[]) {
  const res = await rawRequest(port, raw, 3000);
  expect(res.timedOut, 'the proxy closes the connection').toBe(false);
  expect(statuses, res.text).toContain(statusOf(res.text));
  expect(res.text.match(/HTTP\/1\.[01] \d{3} /g), 'exactly one response').toHaveLength(1);
  expect(origin.seen.length).toBe(0);
  expect(origin.connections()).toBe(0);
  return res;
}

describe('request framing (RFC 9112 §6) and smuggling defences', () => {
  for (const [what, raw] of [
    ['Transfer-Encoding before Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n'],
    ['two equal Content-Length headers', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello'],
    ['a Content-Length list "5, 6"', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!'],
    ['Content-Length: abc', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\nhello'],
    ['Content-Length: -1', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\nhello'],
    ['Content-Length: +5', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello'],
    ['Content-Length: 0x5', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello'],
    ['Content-Length: "5 5"', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\nhello'],
    ['an obs-folded header', 'GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n'],
    ['an obs-folded Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\nhello'],
    ['a tab before the colon', 'GET / HTTP/1.1\r\nHost: a\r\nX-Bad\t: 1\r\n\r\n'],
    ['a space before the colon of Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello'],
    ['a bare CR in the head', 'GET / HTTP/1.1\r\nHost: a\rX-A: 1\r\n\r\n'],
    ['an empty Host', 'GET / HTTP/1.1\r\nHost:\r\n\r\n'],
    ['Host with a userinfo-looking absolute-form', 'GET http://evil@/x HTTP/1.1\r\nHost: a\r\n\r\n'],
  ] as const) {
    it(`${what} → 400`, async () => {
      const origin = await watchedOrigin();
      const port = await proxyFor(origin);
      await expectRefused(port, origin, raw, [400]);
    });
  }

  for (const te of ['gzip', 'identity', 'xchunked', 'chunked;q=1', 'chunked, gzip', 'chunked, chunked']) {
    it(`Transfer-Encoding: ${te} (not chunked once, last) → 400, never forwarded`, async () => {
      const origin = await watchedOrigin();
      const port = await proxyFor(origin);
      await expectRefused(port, origin, `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ${te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, [400]);
    });
  }

  for (const te of ['gzip, chunked', 'gzip\r\nTransfer-Encoding: chunked']) {
    it(`Transfer-Encoding: ${JSON.stringify(te)} (another coding before chunked) → 501, never forwarded without it`, async () => {
      const origin = await watchedOrigin();
      const port = await proxyFor(origin);
      await expectRefused(port, origin, `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ${te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, [501]);
    });
  }

  it('HTTP/1.0 with Transfer-Encoding is refused (its framing cannot be trusted, RFC 9112 §6.1)', async () => {
    const origin = await watchedOrigin();
    const port = await proxyFor(origin);
    await expectRefused(port, origin, 'POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', [400]);
  });

  it('a chunked request goes upstream chunked or with a Content-Length, never both', async () => {
    const origin = await watchedOrigin();
    const port = await proxyFor(origin);
    const res = await rawRequest(port, 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n', 3000);
    expect(statusOf(res.text)).toBe(200);
    const h = origin.seen[0]!.headers;
    expect(h['content-length'] !== undefined && h['transfer-encoding'] !== undefined).toBe(false);
    expect(origin.seen[0]!.body.toString()).toBe('hello');
  });

  it('an unknown method token → 501 (RFC 9110 §9.1); a malformed request line → 400', async () => {
    const origin = await watchedOrigin();
    const port = await proxyFor(origin);
    await expectRefused(port, origin, 'FROB / HTTP/1.1\r\nHost: a\r\n\r\n', [501]);
    await expectRefused(port, origin, 'get / HTTP/1.1\r\nHost: a\r\n\r\n', [400]);
    await expectRefused(port, origin, '\x01\x02 / HTTP/1.1\r\nHost: a\r\n\r\n', [400]);
  });

  for (const line of ['GET /v HTTP/2.0', 'GET /v HTTP/3.0', 'GET /v HTTP/1.2', 'GET /v HTTP/0.9']) {
    it(`${line} → 505 and close (only HTTP/1.0 and 1.1 are spoken on this port)`, async () => {
      const origin = await watchedOrigin();
      const port = await proxyFor(origin);
      await expectRefused(port, origin, `${line}\r\nHost: a\r\n\r\n`, [505]);
    });
  }

  it('a request line without a version (HTTP/0.9 simple request) is not proxied', async () => {
    const origin = await watchedOrigin();
    const port = await proxyFor(origin);
    await expectRefused(port, origin, 'GET /v\r\n\r\n', [400, 505]);
  });

  it('a malformed version → 400', async () => {
    const origin = await watchedOrigin();
    const port = await proxyFor(origin);
    await expectRefused(port, origin, 'GET /v HTTP/1.1x\r\nHost: a\r\n\r\n', [400]);
    await expectRefused(port, origin, 'GET /v HTTQ/1.1\r\nHost: a\r\n\r\n', [400]);
  });
});

describe('HTTP/1.0 clients', () => {
  it('an HTTP/1.0 request without Host is routed; the response closes the connection', async () => {
    const origin = await watchedOrigin();
    const port = await proxyFor(origin);
    const res = await rawRequest(port, 'GET /old HTTP/1.0\r\n\r\n', 3000);
    expect(res.timedOut).toBe(false);
    expect(statusOf(res.text)).toBe(200);
    expect(res.text).not.toMatch(/transfer-encoding/i);
    expect(res.text).toMatch(/origin:o GET \/old$/);
  });

  it('HTTP/1.0 with Connection: keep-alive keeps the connection when the response has a Content-Length', async () => {
    const origin = await watchedOrigin((req, res) => {
      const body = `origin:o GET ${req.url}`;
      res.writeHead(200, { 'content-length': body.length });
      res.end(body);
    });
    const port = await proxyFor(origin);
    const c = rawClient(port);
    c.socket.write('GET /one HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n');
    await c.until((t) => t.endsWith('origin:o GET /one'));
    const first = parseResponses(c.text())[0]!;
    expect(first.status).toBe(200);
    expect(header(first, 'connection').map((v) => v.toLowerCase())).toEqual(['keep-alive']);
    expect(c.closed()).toBe(false);
    c.socket.write('GET /two HTTP/1.0\r\nHost: a\r\n\r\n');
    const text = await c.until(() => false);
    expect(text).toMatch(/origin:o GET \/two$/);
  });

  it('HTTP/1.0 with keep-alive and a chunked origin response gets it close-delimited, whole', async () => {
    const origin = await watchedOrigin((_req, res) => {
      res.write('a, ');
      res.end('b');
    });
    const port = await proxyFor(origin);
    const res = await rawRequest(port, 'GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n', 3000);
    expect(res.timedOut).toBe(false);
    expect(res.text).not.toMatch(/transfer-encoding/i);
    expect(res.text.endsWith('\r\n\r\na, b')).toBe(true);
  });
});

describe('Expect', () => {
  it('Expect other than 100-continue → 417 and the origin sees nothing', async () => {
    const origin = await watchedOrigin();
    const port = await proxyFor(origin);
    await expectRefused(port, origin, 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: something-else\r\n\r\nhello', [417]);
  });

  it('a chunked body with Expect: 100-continue gets 100 then the final response', async () => {
    const origin = await watchedOrigin((_req, res, body) => res.end(`got ${body.toString()}`));
    const port = await proxyFor(origin);
    const c = rawClient(port);
    c.socket.write('POST /e HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-Continue\r\nConnection: close\r\n\r\n');
    const interim = await c.until((t) => t.includes('\r\n\r\n'));
    expect(interim).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\n$/);
    c.socket.write('5\r\nhello\r\n0\r\n\r\n');
    const text = await c.until(() => false);
    const [cont, final] = parseResponses(text);
    expect(cont!.status).toBe(100);
    expect(final!.status).toBe(200);
    expect(final!.body).toBe('got hello');
    expect(origin.seen[0]!.headers.expect).toBeUndefined();
  });
});

describe('Expect without a body', () => {
  it('Expect: 100-continue on a GET or a Content-Length: 0 POST keeps the connection open (no 100: nothing to wait for)', async () => {
    const origin = await watchedOrigin();
    const port = await proxyFor(origin);
    const res = await rawRequest(
      port,
      'GET /a HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n' + 'POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n' + 'GET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
      3000,
    );
    expect(res.timedOut).toBe(false);
    const all = parseResponses(res.text);
    expect(all.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(res.text).not.toMatch(/100 Continue/);
    expect(origin.seen.map((r) => r.url)).toEqual(['/a', '/b', '/c']);
  });
});

describe('interim and bodiless responses from the origin', () => {
  it('103 Early Hints before a final response keep the exchange intact on a kept-alive connection', async () => {
    const origin = await watchedOrigin((req, res) => {
      if (req.url === '/next') return res.end('next');
      res.writeEarlyHints({ link: '</a.css>; rel=preload' }, () => res.end('final'));
    });
    const port = await proxyFor(origin);
    const c = rawClient(port);
    c.socket.write('GET /h HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    const all = parseResponses(await c.until(() => false)).filter((r) => r.status >= 200);
    expect(all.map((r) => [r.status, r.body])).toEqual([
      [200, 'final'],
      [200, 'next'],
    ]);
  });

  it('an unsolicited 100 Continue before the final response is skipped like any 1xx (RFC 9110 §15.2), not a 502', async () => {
    const up = await rawOrigin((s) => s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'));
    const port = await proxyFor(up, '    retries: 0\n');
    const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 3000);
    expect(statusOf(res.text)).toBe(200);
    expect(res.text.endsWith('\r\n\r\nok')).toBe(true);
  });

  it('a 101 to a request that asked for no upgrade → 502', async () => {
    const up = await rawOrigin((s) => s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: evil\r\nConnection: upgrade\r\n\r\nRAW BYTES'));
    const port = await proxyFor(up, '    retries: 0\n');
    const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 3000);
    expect(res.timedOut).toBe(false);
    expect(statusOf(res.text)).toBe(502);
    expect(res.text).not.toContain('RAW BYTES');
  });

  it('HEAD of a chunked origin response: no body, no chunk terminator, connection reusable', async () => {
    const up = await rawOrigin((s, head) => {
      if (head.startsWith('HEAD')) s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n');
      else s.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext');
    });
    const port = await proxyFor(up);
    const c = rawClient(port);
    c.socket.write('HEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    const text = await c.until(() => false);
    const [h, g] = parseResponses(text, [true, false]);
    expect(h!.status).toBe(200);
    expect(g!.status).toBe(200);
    expect(g!.body).toBe('next');
  });

  it('an HTTP/1.0 origin response with neither Content-Length nor chunked (read until close) arrives whole and properly framed', async () => {
    const up = await rawOrigin((s) => {
      s.write('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst part, ');
      setTimeout(() => s.end('second part'), 30);
    });
    const port = await proxyFor(up);
    const c = rawClient(port);
    c.socket.write('GET /a HTTP/1.1\r\nHost: a\r\n\r\n');
    const text = await c.until((t) => t.endsWith('0\r\n\r\n') || /content-length: \d+\r\n[\s\S]*second part$/i.test(t));
    const [r] = parseResponses(text);
    expect(r!.status).toBe(200);
    expect(r!.complete).toBe(true);
    expect(r!.body).toBe('first part, second part');
  });

  it('an origin 304 with a Content-Length (RFC 9110 §8.6 allows it) keeps it, sends no body, and the connection goes on', async () => {
    const up = await rawOrigin((s) => s.write('HTTP/1.1 304 Not Modified\r\nETag: "x"\r\nContent-Length: 1234\r\n\r\n'));
    const port = await proxyFor(up);
    const c = rawClient(port);
    c.socket.write('GET /a HTTP/1.1\r\nHost: a\r\n\r\n');
    await c.until((t) => t.includes('\r\n\r\n'));
    c.socket.write('GET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    const rs = parseResponses(await c.until(() => false));
    expect(rs.map((r) => r.status)).toEqual([304, 304]);
    expect(header(rs[0]!, 'content-length')).toEqual(['1234']);
    expect(rs.every((r) => r.body === '')).toBe(true);
  });

  it('an origin 204 with a Content-Length is forwarded without it (RFC 9110 §8.6) and without a body', async () => {
    const up = await rawOrigin((s) => s.write('HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n'));
    const port = await proxyFor(up);
    const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 3000);
    const [r] = parseResponses(res.text);
    expect(r!.status).toBe(204);
    expect(header(r!, 'x-a')).toEqual(['1']);
    expect(header(r!, 'content-length')).toEqual([]);
    expect(header(r!, 'transfer-encoding')).toEqual([]);
    expect(res.text.endsWith('\r\n\r\n')).toBe(true);
  });
});

describe('Via, Max-Forwards and TRACE', () => {
  it('Via is added both ways (RFC 9110 §7.6.3), after any Via already there', async () => {
    const origin = await watchedOrigin((_req, res) => {
      res.setHeader('via', '1.1 origin-cache');
      res.end('ok');
    });
    const port = await proxyFor(origin);
    const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: a\r\nVia: 1.0 fred\r\nConnection: close\r\n\r\n', 3000);
    const [r] = parseResponses(res.text);
    expect(origin.seen[0]!.headers.via).toBe('1.0 fred, 1.1 scriptgate');
    expect(header(r!, 'via').join(', ')).toBe('1.1 origin-cache, 1.1 scriptgate');
  });

  it('the Via protocol is the one the message came in with (HTTP/1.0 client)', async () => {
    const origin = await watchedOrigin();
    const port = await proxyFor(origin);
    await rawRequest(port, 'GET / HTTP/1.0\r\nHost: a\r\n\r\n', 3000);
    expect(origin.seen[0]!.headers.via).toBe('1.0 scriptgate');
  });

  it('via: <name> names the proxy in Via', async () => {
    const origin = await watchedOrigin();
    const port = await proxyFor(origin, '', 'via: edge-1\n');
    const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 3000);
    expect(origin.seen[0]!.headers.via).toBe('1.1 edge-1');
    expect(header(parseResponses(res.text)[0]!, 'via')).toEqual(['1.1 edge-1']);
  });

  it('via: false adds no Via', async () => {
    const origin = await watchedOrigin();
    const port = await proxyFor(origin, '', 'via: false\n');
    const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 3000);
    expect(origin.seen[0]!.headers.via).toBeUndefined();
    expect(res.text).not.toMatch(/\r\nvia:/i);
  });

  it('TRACE → 405 with Allow, never forwarded (nginx does the same)', async () => {
    const origin = await watchedOrigin();
    const port = await proxyFor(origin);
    const res = await expectRefused(port, origin, 'TRACE / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', [405]);
    expect(res.text).toMatch(/\r\nallow: [^\r]*GET/i);
    expect(res.text).not.toMatch(/\r\nallow: [^\r]*TRACE/i);
  });

  it('OPTIONS with Max-Forwards: 0 is answered by the proxy (RFC 9110 §7.6.2)', async () => {
    const origin = await watchedOrigin();
    const port = await proxyFor(origin);
    const res = await expectRefused(port, origin, 'OPTIONS /x HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\nConnection: close\r\n\r\n', [200]);
    expect(res.text).toMatch(/\r\nallow: [^\r]*GET/i);
  });

  it('OPTIONS with Max-Forwards: 0 answers for the route it matches: its methods in Allow, and 404 where no route matches', async () => {
    const origin = await watchedOrigin();
    const { port } = await startProxy(`listen:\n  - address: 127.0.0.1:0\nlog: { level: silent }\nupstreams:\n  up: { targets: ["${origin.address}"] }\nroutes:\n  - match: { path_prefix: /api/, methods: [GET, OPTIONS] }\n    upstream: up\n`);
    const api = await rawRequest(port, 'OPTIONS /api/x HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\nConnection: close\r\n\r\n');
    expect(statusOf(api.text)).toBe(200);
    expect(api.text).toMatch(/\r\nallow: GET, OPTIONS, HEAD\r\n/i);
    const none = await rawRequest(port, 'OPTIONS /elsewhere HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\nConnection: close\r\n\r\n');
    expect(statusOf(none.text)).toBe(404);
    expect(origin.seen).toHaveLength(0);
  });

  it('OPTIONS with Max-Forwards: 3 goes upstream with Max-Forwards: 2; other methods pass it unchanged', async () => {
    const origin = await watchedOrigin();
    const port = await proxyFor(origin);
    await rawRequest(port, 'OPTIONS /x HTTP/1.1\r\nHost: a\r\nMax-Forwards: 3\r\nConnection: close\r\n\r\n', 3000);
    await rawRequest(port, 'GET /x HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\nConnection: close\r\n\r\n', 3000);
    expect(origin.seen.map((s) => [s.method, s.headers['max-forwards']])).toEqual([
      ['OPTIONS', '2'],
      ['GET', '0'],
    ]);
  });
});

describe('hop-by-hop fields and forwarding headers', () => {
  it('an HTTP/1.1 client TE: trailers is not forwarded to an HTTP/1 origin; Upgrade of a non-upgrade request neither', async () => {
    const origin = await watchedOrigin();
    const port = await proxyFor(origin);
    await rawRequest(port, 'GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nUpgrade: foo/2\r\nConnection: close\r\n\r\n', 3000);
    const h = origin.seen[0]!.headers;
    expect(h.te).toBeUndefined();
    expect(h.upgrade).toBeUndefined();
  });

  it('Forwarded is left exactly as the client sent it; X-Forwarded-Proto and -Host are set', async () => {
    const origin = await watchedOrigin();
    const port = await proxyFor(origin);
    await rawRequest(port, 'GET / HTTP/1.1\r\nHost: a.test:8080\r\nForwarded: for=192.0.2.60;proto=http;by=203.0.113.43\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nConnection: close\r\n\r\n', 3000);
    const h = origin.seen[0]!.headers;
    expect(h.forwarded).toBe('for=192.0.2.60;proto=http;by=203.0.113.43');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-forwarded-host']).toBe('a.test:8080');
  });

  it('trailers of a chunked origin response reach an HTTP/1.1 client that sent TE: trailers', async () => {
    const up = await rawOrigin((s) => s.write('HTTP/1.1 200 OK\r\nTrailer: X-Checksum\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Checksum: 42\r\n\r\n'));
    const port = await proxyFor(up);
    const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nConnection: close\r\n\r\n', 3000);
    const [r] = parseResponses(res.text);
    expect(r!.status).toBe(200);
    expect(r!.complete).toBe(true);
    expect(r!.body).toBe('abc');
    expect(r!.trailers).toContainEqual(['x-checksum', '42']);
  });

  it('trailers of a chunked origin response do not break a client that did not ask for them', async () => {
    const up = await rawOrigin((s) => s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Checksum: 42\r\n\r\n'));
    const port = await proxyFor(up);
    const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 3000);
    const [r] = parseResponses(res.text);
    expect(r!.complete).toBe(true);
    expect(r!.body).toBe('abc');
  });
});

describe('limits', () => {
  it('a chunked body over max_body_size → 413 (the origin waits for the whole body before answering)', async () => {
    const origin = await watchedOrigin();
    const port = await proxyFor(origin, '', 'limits: { max_body_size: 1kb }\n');
    const chunk = 'y'.repeat(600);
    const res = await rawRequest(port, `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n${chunk}\r\n258\r\n${chunk}\r\n0\r\n\r\n`, 3000);
    expect(res.timedOut).toBe(false);
    expect(statusOf(res.text)).toBe(413);
    expect(origin.seen).toHaveLength(0);
  });
});

describe('pipelining', () => {
  it('pipelined requests are answered in order, even when a later one is faster upstream', async () => {
    const origin = await watchedOrigin((req, res) => {
      const delay = req.url === '/slow' ? 150 : 0;
      setTimeout(() => res.end(`body ${req.url}`), delay);
    });
    const port = await proxyFor(origin);
    const c = rawClient(port);
    c.socket.write(
      'GET /slow HTTP/1.1\r\nHost: a\r\n\r\nHEAD /fast HTTP/1.1\r\nHost: a\r\n\r\nPOST /post HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhiGET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    );
    const text = await c.until(() => false, 5000);
    const rs = parseResponses(text, [false, true, false, false]);
    expect(rs.map((r) => [r.status, r.body])).toEqual([
      [200, 'body /slow'],
      [200, ''],
      [200, 'body /post'],
      [200, 'body /last'],
    ]);
  });

  it('a malformed request pipelined behind whole ones: those are answered first, in order, then the 400, then the close (as nginx)', async () => {
    const origin = await watchedOrigin((req, res) => setTimeout(() => res.end(`body ${req.url}`), req.url === '/1' ? 100 : 0));
    const port = await proxyFor(origin);
    const c = rawClient(port);
    c.socket.write('GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\nGARBAGE\r\n\r\n');
    const rs = parseResponses(await c.until(() => false, 5000));
    expect(rs.map((r) => [r.status, r.body])).toEqual([
      [200, 'body /1'],
      [200, 'body /2'],
      [200, 'body /3'],
      [400, '400 Bad Request\n'],
    ]);
    expect(c.closed()).toBe(true);
  });

  it('bytes after a request that asked to close are ignored: the requests before it and it are answered, then the close', async () => {
    const origin = await watchedOrigin((req, res) => setTimeout(() => res.end(`body ${req.url}`), req.url === '/1' ? 100 : 0));
    const port = await proxyFor(origin);
    const c = rawClient(port);
    c.socket.write('GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n');
    const rs = parseResponses(await c.until(() => false, 5000));
    expect(rs.map((r) => [r.status, r.body])).toEqual([
      [200, 'body /1'],
      [200, 'body /2'],
    ]);
    expect(c.closed()).toBe(true);
    expect(origin.seen.map((r) => r.url)).toEqual(['/1', '/2']);
  });
});

describe('connection management', () => {
  it('a client Connection: close gets Connection: close and the connection ends after the response', async () => {
    const origin = await watchedOrigin();
    const port = await proxyFor(origin);
    const c = rawClient(port);
    c.socket.write('GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    const text = await c.until(() => false);
    expect(c.closed()).toBe(true);
    const [r] = parseResponses(text);
    expect(r!.complete).toBe(true);
    expect(header(r!, 'connection').map((v) => v.toLowerCase())).toEqual(['close']);
  });

  it('an origin Connection: close ends the origin connection, not the client one', async () => {
    const up = await rawOrigin((s, head) => s.end(`HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: ${head.split(' ')[1]!.length}\r\n\r\n${head.split(' ')[1]}`));
    const port = await proxyFor(up);
    const c = rawClient(port);
    c.socket.write('GET /one HTTP/1.1\r\nHost: a\r\n\r\n');
    await c.until((t) => t.endsWith('/one'));
    c.socket.write('GET /two HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    const rs = parseResponses(await c.until(() => false));
    expect(rs.map((r) => [r.status, r.body])).toEqual([
      [200, '/one'],
      [200, '/two'],
    ]);
    expect(header(rs[0]!, 'connection').map((v) => v.toLowerCase())).not.toContain('close');
  });

  it('a request refused before its body was read, whose body then turns out malformed, gets exactly one response', async () => {
    const origin = await watchedOrigin();
    const port = await proxyFor(origin);
    const res = await rawRequest(port, 'TRACE / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nxx\r\n0\r\n\r\n', 3000);
    expect(res.timedOut).toBe(false);
    expect(res.text.match(/HTTP\/1\.1 \d{3} /g)).toEqual(['HTTP/1.1 405 ']);
    expect(origin.connections()).toBe(0);
  });
});

describe('upstream responses the proxy cannot forward', () => {
  for (const [what, reply] of [
    ['an invalid header name', 'HTTP/1.1 200 OK\r\nBad Header: x\r\nContent-Length: 2\r\n\r\nok'],
    ['a header line without a colon', 'HTTP/1.1 200 OK\r\nNoColon\r\nContent-Length: 2\r\n\r\nok'],
    ['two different Content-Lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!'],
    ['a bad status line', 'HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok'],
    ['a NUL in a header value', 'HTTP/1.1 200 OK\r\nX-A: a\u0000b\r\nContent-Length: 2\r\n\r\nok'],
  ] as const) {
    it(`${what} → 502`, async () => {
      const up = await rawOrigin((s) => s.end(reply));
      const port = await proxyFor(up, '    retries: 0\n');
      const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 3000);
      expect(statusOf(res.text), res.text).toBe(502);
    });
  }

  it('an origin that closes before sending headers → 502', async () => {
    const up = await rawOrigin((s) => s.end());
    const port = await proxyFor(up, '    retries: 0\n');
    const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 3000);
    expect(statusOf(res.text)).toBe(502);
  });

  it('an origin that closes halfway through its head → 502', async () => {
    const up = await rawOrigin((s) => s.end('HTTP/1.1 200 OK\r\nContent-Le'));
    const port = await proxyFor(up, '    retries: 0\n');
    const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 3000);
    expect(statusOf(res.text)).toBe(502);
  });

  it('a Content-Length response cut short: the client sees fewer bytes and the connection closed', async () => {
    const { closed, r } = await throughTruncatingOrigin('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this');
    expect(closed).toBe(true);
    expect(r!.status).toBe(200);
    expect(r!.complete).toBe(false);
  });

  it('a chunked response cut short: no last chunk reaches the client, and the connection is closed', async () => {
    const { closed, r } = await throughTruncatingOrigin('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
    expect(closed).toBe(true);
    expect(r!.status).toBe(200);
    expect(r!.complete).toBe(false);
  });
});

describe('request heads and bodies at the limits', () => {
  it('client_body_timeout: a client that stops mid-body gets 408 and its upstream request is cancelled, freeing the pool for others', async () => {
    let aborted = 0;
    const origin = await startOrigin((_req, res) => res.end('ok'));
    origin.server.on('request', (req) => req.on('aborted', () => aborted++));
    const { port } = await startProxy(
      `listen:\n  - address: 127.0.0.1:0\nlimits: { client_body_timeout: 300ms }\nlog: { level: silent }\nupstreams:\n  up:\n    targets: ["${origin.address}"]\n    connections: 1\nroutes:\n  - name: all\n    upstream: up\n`,
    );
    const stalled = rawClient(port);
    stalled.socket.write('POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc');
    const t0 = Date.now();
    const answer = await stalled.until((t) => t.includes('\r\n\r\n'), 5000);
    expect(statusOf(answer)).toBe(408);
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
    expect(Date.now() - t0).toBeLessThan(3000);
    // The one pooled upstream connection is free again: the next request is answered.
    const next = await rawRequest(port, 'GET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(statusOf(next.text)).toBe(200);
    await new Promise<void>((r) => setImmediate(r));
    expect(aborted).toBe(1);
  });

  it('more than 2000 header lines: none is dropped (the body and its Content-Length arrive); max_header_size counts the head as sent', async () => {
    const origin = await startOrigin();
    origin.server.maxHeadersCount = 0;
    const { port } = await startProxy(simpleConfig([origin]).replace('log: { level: silent }', 'log: { level: silent }\nlimits: { max_header_size: 16kb }'));
    const many = 'a: 1\r\n'.repeat(2000);
    const res = await rawRequest(port, `POST /many HTTP/1.1\r\nHost: a\r\n${many}Content-Length: 5\r\nConnection: close\r\n\r\nhello`);
    expect(statusOf(res.text)).toBe(200);
    expect(origin.seen[0]!.body.toString()).toBe('hello');
    // 3000 short lines are 18 KB as sent, though node counts only their names and values (6 KB).
    const over = await rawRequest(port, `GET /over HTTP/1.1\r\nHost: a\r\n${'a: 1\r\n'.repeat(3000)}Connection: close\r\n\r\n`);
    expect(statusOf(over.text)).toBe(431);
    expect(origin.seen).toHaveLength(1);
  });

  it('a missing Host and a malformed head are refused in the proxy’s own format: a text body, Date and X-Request-Id', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(simpleConfig([origin]));
    for (const raw of ['GET / HTTP/1.1\r\n\r\n', 'GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n']) {
      const res = await rawRequest(port, raw);
      expect(statusOf(res.text)).toBe(400);
      expect(res.text).toMatch(/\r\ndate: [A-Z][a-z]{2}, \d\d /i);
      expect(res.text).toMatch(/\r\nx-request-id: [0-9a-f-]{36}\r\n/i);
      expect(res.text).toMatch(/\r\ncontent-type: text\/plain; charset=utf-8\r\n/i);
      expect(res.text).toMatch(/\r\n\r\n400 /);
    }
    // HTTP/1.0 had no Host requirement.
    expect(statusOf((await rawRequest(port, 'GET /old HTTP/1.0\r\n\r\n')).text)).toBe(200);
    expect(origin.seen).toHaveLength(1);
  });
});

describe('upstream timeouts', () => {
  it('timeouts.read fires on time (to the tens of milliseconds, not undici’s half-second ticks): 504', async () => {
    const origin = await startOrigin(() => undefined); // never answers
    const { port } = await startProxy(
      `listen:\n  - address: 127.0.0.1:0\nlog: { level: silent }\nupstreams:\n  up:\n    targets: ["${origin.address}"]\n    timeouts: { read: 2200ms }\n    retries: 0\nroutes:\n  - name: all\n    upstream: up\n`,
    );
    const t0 = Date.now();
    const res = await rawRequest(port, 'GET /slow HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    const ms = Date.now() - t0;
    expect(statusOf(res.text)).toBe(504);
    expect(ms).toBeGreaterThanOrEqual(2150);
    // undici's own timer for it ticks every ~0.5 s: it answered at 2.52–2.53 s here.
    expect(ms).toBeLessThan(2450);
  });
});

describe('slow clients hold nothing upstream for ever', () => {
  it('send_timeout: a client that stops reading has its response cut and the upstream request cancelled', async () => {
    let closed!: (finished: boolean) => void;
    const upstreamClosed = new Promise<boolean>((r) => (closed = r));
    const origin = await startOrigin((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
      };
      res.on('drain', pump);
      res.on('close', () => closed(res.writableFinished));
      pump();
    });
    const { port } = await startProxy(simpleConfig([origin]).replace('log: { level: silent }', 'log: { level: silent }\nlimits: { send_timeout: 300ms }'));
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    onTestFinished(() => void socket.destroy());
    socket.pause(); // never reads: the kernel buffers fill, then the proxy's writes wait
    socket.write('GET /endless HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(await upstreamClosed).toBe(false);
  });

  it('timeouts.read counts from the end of a slow upload, not from its start (the upstream waited for the client)', async () => {
    const origin = await startOrigin((_req, res, body) => res.end(`got ${body.length}`));
    const { port } = await startProxy(simpleConfig([origin], '    timeouts: { read: 300ms }\n'));
    const c = rawClient(port);
    c.socket.write('POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nConnection: close\r\n\r\nab');
    for (const piece of ['cd', 'ef']) {
      await new Promise((r) => setTimeout(r, 250));
      c.socket.write(piece);
    }
    const text = await c.until((t) => t.includes('got 6'), 5000);
    expect(statusOf(text)).toBe(200);
  });
});
