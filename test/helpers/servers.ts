/**
 * Test helpers that own real sockets on 127.0.0.1 port 0: a recording origin, an in-process proxy
 * built from YAML text, raw-socket and node:http clients. Everything started here is closed by
 * `onTestFinished`, so tests stay independent.
 */
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { onTestFinished } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { ProxyServer } from '../../src/control/proxy-server.ts';
import { createLogger } from '../../src/observability/logger.ts';

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

export interface Origin {
  port: number;
  address: string;
  seen: SeenRequest[];
  server: http.Server;
}

/**
 * Starts an origin that records every request (with its whole body) and answers with `handler`,
 * or by default 200 `origin:<name> <method> <url>`.
 */
export async function startOrigin(
  handler?: (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void,
  name = 'o',
): Promise<Origin> {
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body });
      if (handler) return handler(req, res, body);
      res.writeHead(200, { 'content-type': 'text/plain', 'x-origin': name });
      res.end(`origin:${name} ${req.method} ${req.url}`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  onTestFinished(() => closeServer(server));
  return { port, address: `127.0.0.1:${port}`, seen, server };
}

export function closeServer(server: http.Server | net.Server): Promise<void> {
  return new Promise((r) => {
    (server as http.Server).closeAllConnections?.();
    server.close(() => r());
  });
}

/** Writes `yaml` to a temp folder (with `files` beside it) and returns the config path. */
export function writeConfig(yaml: string, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sg-test-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  const file = path.join(dir, 'scriptgate.yaml');
  writeFileSync(file, yaml);
  return file;
}

/** Starts an in-process proxy from YAML (listen on 127.0.0.1:0); closed after the test. */
export async function startProxy(
  yaml: string,
  files: Record<string, string> = {},
  logger?: import('pino').Logger,
): Promise<{ port: number; server: ProxyServer; file: string }> {
  const file = writeConfig(yaml, files);
  const { readFileSync } = await import('node:fs');
  const loaded = parseConfig(readFileSync(file, 'utf8'), file);
  const server = await ProxyServer.start(loaded, logger ?? createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'));
  onTestFinished(() => server.shutdown(false));
  return { port: server.ports[0]!, server, file };
}

/** A minimal proxy config in front of `origins` (one upstream `up`, one catch-all route). */
export function simpleConfig(origins: Origin[], extra = ''): string {
  return `listen:\n  - address: 127.0.0.1:0\nlog: { level: silent }\nupstreams:\n  up:\n    targets: [${origins.map((o) => `"${o.address}"`).join(', ')}]\n${extra}routes:\n  - name: all\n    upstream: up\n`;
}

export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  text: string;
}

/** One request with node:http (no keep-alive); resolves with the whole response. */
export function request(
  port: number,
  opts: { method?: string; path?: string; headers?: http.OutgoingHttpHeaders; body?: string | Buffer; host?: string } = {},
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path ?? '/', headers: { ...(opts.host ? { host: opts.host } : {}), ...opts.headers }, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body, text: body.toString() });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/**
 * Sends raw bytes on a fresh TCP connection and collects everything until the server closes the
 * connection or `timeoutMs` passes (then `timedOut` is true and the socket is destroyed).
 */
export function rawRequest(port: number, data: string | Buffer, timeoutMs = 5000): Promise<{ text: string; timedOut: boolean; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, timeoutMs);
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text: Buffer.concat(chunks).toString('latin1'), timedOut, ms: Date.now() - t0 });
    });
    socket.write(data);
  });
}

/** Status code of the first response in raw HTTP text, or 0 when there is none. */
export function statusOf(raw: string): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(raw);
  return m ? Number(m[1]) : 0;
}
