/**
 * A TCP stream listener (`streams:` in the config; nginx's `stream` module): each accepted
 * connection is forwarded as raw bytes to a target of the stream's upstream. Runs per connection,
 * on the generation current when it was accepted (pinned until it closes, so a hot reload never
 * cuts it):
 *
 *   [TLS termination: certificate by SNI, like HTTP listeners]
 *   → access_by_script (optional): sees the client address and SNI; `ctx.exit()` closes the
 *     connection before any byte is forwarded; `ctx.upstream = name` picks another upstream
 *   → connect a target (stream-connect.ts: balancing, health, failover on connect failure, TLS origination)
 *   → tunnel (stream-tunnel.ts: back-pressure both ways, half-close, `idle_timeout`)
 *   → one `stream` log line and log_by_script (optional) when the connection has closed.
 *
 * The log line's `status` follows nginx's stream `$status`: 200 forwarded, 403 refused by the
 * script, 500 script failure, 502 no target could be connected, 503 no target to try.
 */
import { randomUUID } from 'node:crypto';
import net, { type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import tls, { type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { StreamConfig } from '../config/schema.ts';
import { parseHostPort } from '../config/units.ts';
import type { Generation } from '../control/generation.ts';
import { ProxyError, isProxyError, type ErrorCode } from '../errors.ts';
import type { RouteScripts, ScriptRequest, ScriptSession } from '../phases/contract.ts';
import type { Target } from '../upstream/upstream.ts';
import { connectUpstream, type ConnectAttempt } from './stream-connect.ts';
import { startTunnel, type TunnelStats } from './stream-tunnel.ts';
import { tlsRecordOf } from './tls-facts.ts';
import { sentUnverifiedClientCertificate, type CertificateTable } from './tls-certificates.ts';
import { accessSink } from '../observability/access-log.ts';

export interface StreamListenerOptions {
  /** Position in config.streams; a reload's stream at the same position takes over its settings. */
  index: number;
  config: StreamConfig;
  logger: Logger;
  /** The generation new connections start on. */
  current: () => Generation;
  accessLog: () => boolean;
}

export class StreamListener {
  readonly server: net.Server;
  readonly #opts: StreamListenerOptions;
  /** Client sockets, so a hard stop can cut them. */
  readonly #sockets = new Set<Socket>();
  #certificates: CertificateTable | undefined;

  constructor(opts: StreamListenerOptions) {
    this.#opts = opts;
    const config = opts.config;
    if (config.tls) {
      const table = this.#currentCertificates();
      if (!table) throw new Error(`stream ${config.address}: no certificates loaded`);
      const verify = config.tls.verify_client;
      const front = tls.createServer({
        ...table.serverOptions,
        SNICallback: (servername, cb) => cb(null, this.#certificates!.lookup(servername)),
        requestCert: verify !== 'off',
        rejectUnauthorized: verify === 'on',
        handshakeTimeout: config.handshake_timeout,
        allowHalfOpen: true,
        noDelay: true,
      } as tls.TlsOptions);
      front.prependListener('connection', (socket: Socket) => {
        this.#track(socket);
        this.#currentCertificates();
      });
      front.on('secureConnection', (socket: TLSSocket) => {
        // verify_client optional: a certificate that was sent must verify (nginx stream closes such connections).
        if (verify === 'optional' && sentUnverifiedClientCertificate(socket)) {
          opts.logger.info({ stream: this.name, client: socket.remoteAddress, err: String(socket.authorizationError) }, 'stream client certificate refused');
          socket.destroy();
          return;
        }
        this.#accept(socket, typeof socket.servername === 'string' ? socket.servername : '');
      });
      front.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
        opts.logger.debug({ stream: this.name, client: socket.remoteAddress, code: err.code, err: err.message }, 'stream TLS handshake failed');
        socket.destroy();
      });
      this.server = front;
    } else {
      this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
        this.#track(socket);
        this.#accept(socket, '');
      });
    }
  }

  get name(): string {
    return this.#opts.config.name ?? `stream#${this.#opts.index}`;
  }

  #currentCertificates(): CertificateTable | undefined {
    const table = this.#opts.current().streamCertificates[this.#opts.index];
    if (table && table !== this.#certificates) {
      if (this.#certificates) (this.server as tls.Server).setSecureContext(table.serverOptions);
      this.#certificates = table;
    }
    return this.#certificates;
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
  }

  #accept(socket: Socket, serverName: string): void {
    const gen = this.#opts.current();
    const config = gen.config.streams[this.#opts.index];
    if (!config || config.address !== this.#opts.config.address) {
      // The running config no longer has this stream here: it goes away at the next restart.
      this.#opts.logger.warn({ stream: this.name }, 'stream connection refused: the current config no longer lists this stream');
      socket.destroy();
      return;
    }
    new StreamConnection(gen, this.#opts.index, config, this.#opts, socket, serverName).start();
  }

  /** Binds the address (or accepts on `inherited`, a socket handed over by the process being replaced); resolves with the bound port. */
  listen(inherited?: net.Server): Promise<number> {
    const { host, port } = parseHostPort(this.#opts.config.address)!;
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(inherited ?? { host, port, backlog: 4096 }, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as net.AddressInfo).port);
      });
    });
  }

  get listening(): boolean {
    return this.server.listening;
  }

  /** Stops accepting; resolves when every connection has ended by itself (graceful). */
  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Cuts every connection now. */
  closeAllConnections(): void {
    for (const s of this.#sockets) s.destroy();
  }
}

/** One client connection of a stream, from accept to its log line. */
class StreamConnection {
  readonly #gen: Generation;
  readonly #index: number;
  readonly #config: StreamConfig;
  readonly #opts: StreamListenerOptions;
  readonly #socket: Socket;
  readonly #serverName: string;
  readonly #id = randomUUID();
  readonly #start = performance.now();
  readonly #name: string;
  readonly #clientIp: string;
  readonly #clientPort: number;
  #scripts: RouteScripts | undefined;
  #session: ScriptSession | undefined;
  #logger: Logger | undefined;
  #upstreamName: string;
  #target: Target | undefined;
  #connecting: ConnectAttempt | undefined;
  #tunnelled = false;
  #tConnected = -1;
  #status = 0;
  #error: ErrorCode | '' = '';
  #stats: TunnelStats = { bytesToClient: 0, bytesFromClient: 0, error: '' };
  #done = false;

  constructor(gen: Generation, index: number, config: StreamConfig, opts: StreamListenerOptions, socket: Socket, serverName: string) {
    this.#gen = gen;
    this.#index = index;
    this.#config = config;
    this.#opts = opts;
    this.#socket = socket;
    this.#serverName = serverName;
    this.#name = config.name ?? `stream#${index}`;
    this.#clientIp = socket.remoteAddress ?? '';
    this.#clientPort = socket.remotePort ?? 0;
    this.#upstreamName = config.upstream;
    gen.acquire();
    socket.on('error', () => undefined); // reported by the tunnel, or ends the connection (close)
    socket.once('close', () => {
      if (!this.#tunnelled) this.#finish();
    });
  }

  start(): void {
    try {
      if (this.#access()) this.#connect();
    } catch (err) {
      this.#refuse(err);
    }
  }

  /** Runs access_by_script when the stream has one; false when the connection was refused. */
  #access(): boolean {
    const scripts = this.#gen.scripts?.route(this.#gen.config.routes.length + this.#index);
    if (!scripts) return true;
    this.#scripts = scripts;
    const sreq: ScriptRequest = {
      id: this.#id,
      method: 'CONNECT',
      path: '/',
      query: '',
      headers: this.#serverName ? ['host', this.#serverName] : [],
      httpVersion: '',
      scheme: this.#config.tls ? 'tls' : 'tcp',
      clientIp: this.#clientIp,
      clientPort: this.#clientPort,
      tls: tlsRecordOf(this.#socket),
      route: this.#name,
      tenant: this.#config.tenant,
    };
    this.#logger = this.#opts.logger.child({ connId: this.#id, stream: this.#name, tenant: this.#config.tenant });
    this.#session = scripts.open(sreq, this.#logger);
    if (!scripts.has.access) return true;
    const out = this.#session.requestPhases(sreq);
    if (out.action === 'exit') {
      this.#status = 403;
      this.#error = 'PRX_ERR_STREAM_REFUSED';
      this.#socket.destroy();
      return false;
    }
    if (out.upstream !== undefined) this.#upstreamName = out.upstream;
    return true;
  }

  #connect(): void {
    const upstream = this.#gen.upstreams.get(this.#upstreamName);
    if (!upstream) throw new ProxyError('PRX_ERR_NO_TARGET', `unknown upstream ${JSON.stringify(this.#upstreamName)}`, { status: 500 });
    const hashKey = upstream.hashKey({ headers: [], clientIp: this.#clientIp, path: '' });
    this.#connecting = connectUpstream(upstream, { hashKey, allowHalfOpen: true }, (err, conn) => {
      this.#connecting = undefined;
      if (err) return this.#refuse(err);
      this.#target = conn!.target;
      this.#tConnected = performance.now();
      this.#status = 200;
      if (this.#socket.destroyed) {
        conn!.socket.destroy();
        return;
      }
      this.#tunnelled = true;
      startTunnel(this.#socket, conn!.socket, { idleMs: this.#config.idle_timeout, onClose: (stats) => this.#closed(stats) });
    });
  }

  /** No tunnel: a script failure or no target could be connected. The client is closed. */
  #refuse(err: unknown): void {
    const e = isProxyError(err) ? err : new ProxyError('PRX_ERR_INTERNAL', (err as Error)?.message ?? String(err), { cause: err });
    this.#status = e.source === 'script' ? 500 : e.code === 'PRX_ERR_NO_TARGET' ? e.status : 502;
    this.#error = e.code;
    // #logger, once made, already carries connId and stream (and tenant).
    const logger = this.#logger ?? this.#opts.logger.child({ connId: this.#id, stream: this.#name });
    if (e.source === 'script') logger.error({ code: e.code, err: e.message }, 'script failed');
    else logger.warn({ upstream: this.#upstreamName, code: e.code, err: e.message }, 'stream connection failed');
    this.#socket.destroy();
  }

  #closed(stats: TunnelStats): void {
    this.#stats = stats;
    this.#error ||= stats.error === 'PRX_ERR_CLIENT_ABORTED' ? '' : stats.error;
    this.#finish();
  }

  /** Runs once, when the client connection is gone (tunnel closed or refused). */
  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    this.#connecting?.cancel();
    if (this.#target) this.#target.inFlight--;
    const total = performance.now() - this.#start;
    if (!this.#status) {
      this.#status = 499;
      this.#error ||= 'PRX_ERR_CLIENT_ABORTED';
    }
    const { bytesToClient, bytesFromClient } = this.#stats;
    if (this.#session) {
      if (this.#scripts!.has.log) {
        this.#session.log({
          status: this.#status,
          bytesSent: bytesToClient,
          bytesReceived: bytesFromClient,
          timings: {
            total,
            upstreamConnect: this.#tConnected >= 0 ? this.#tConnected - this.#start : -1,
            upstreamHeader: -1,
            upstreamBody: this.#tConnected >= 0 ? performance.now() - this.#tConnected : -1,
          },
          upstreamAddress: this.#target?.address ?? '',
          responseHeaders: [],
          error: this.#error,
        });
      }
      this.#session.close();
    }
    if (this.#opts.accessLog()) {
      // Where the generation's access lines go (stdout, its file or syslog); a stream line has its own fields.
      accessSink(this.#gen.config.log.access_log_options, this.#opts.logger, this.#gen.file).logger.info(
        {
          connId: this.#id,
          stream: this.#name,
          client: `${this.#clientIp}:${this.#clientPort}`,
          ...(this.#serverName ? { sni: this.#serverName } : {}),
          status: this.#status,
          bytes: bytesToClient,
          bytes_in: bytesFromClient,
          ms: Math.round(total * 1000) / 1000,
          upstream: this.#target?.address,
          ...(this.#error ? { error: this.#error } : {}),
        },
        'stream',
      );
    }
    this.#gen.release();
  }
}
