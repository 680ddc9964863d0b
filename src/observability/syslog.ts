/**
 * A small RFC 5424 syslog writer, used as a pino destination for the access log
 * (`log.access_log.syslog`). Each pino line (one JSON object) becomes one message
 * `<PRI>1 TIMESTAMP HOST APP PROCID access - {json}`: over UDP one datagram per message (RFC 5426),
 * over TCP octet-counted frames (RFC 6587) on one connection that is reopened after an error.
 * Never blocks a request: UDP sends are fire-and-forget; TCP keeps at most `maxPending` messages
 * while (re)connecting, and at most `maxBufferedBytes` (default 4 MiB) unsent on a connection whose
 * server reads slowly or not at all; it drops the rest (counted in `dropped` and by `onDrop`).
 *
 * @example
 *   const out = createSyslogWriter({ address: '127.0.0.1:514', protocol: 'udp', facility: 'local0' });
 *   pino({}, out);
 */
import dgram from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import { parseHostPort } from '../config/units.ts';

/** RFC 5424 facility names and codes. */
export const FACILITIES = {
  kern: 0, user: 1, mail: 2, daemon: 3, auth: 4, syslog: 5, lpr: 6, news: 7, uucp: 8, cron: 9, authpriv: 10, ftp: 11,
  local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23,
} as const;
export type Facility = keyof typeof FACILITIES;

export interface SyslogOptions {
  /** host:port of the syslog server. */
  address: string;
  protocol?: 'udp' | 'tcp';
  facility?: Facility;
  /** APP-NAME field; default scriptgate. */
  appName?: string;
  maxPending?: number;
  /** Unsent bytes a TCP connection may hold before messages are dropped; default 4 MiB. */
  maxBufferedBytes?: number;
  /** Called with the number of messages just dropped (a metric). */
  onDrop?: (n: number) => void;
}

export interface SyslogWriter {
  /** pino calls this with one serialized line (ending in \n). */
  write(line: string): boolean;
  /** Messages dropped (TCP backlog full, or a send failed). */
  readonly dropped: number;
  close(): void;
}

/** pino level number → syslog severity. */
function severity(level: unknown): number {
  if (typeof level === 'number') return level >= 60 ? 2 : level >= 50 ? 3 : level >= 40 ? 4 : level >= 30 ? 6 : 7;
  return level === 'fatal' ? 2 : level === 'error' ? 3 : level === 'warn' ? 4 : level === 'debug' || level === 'trace' ? 7 : 6;
}

/** Formats one RFC 5424 message for a pino JSON line. */
export function formatSyslog(line: string, facility: Facility, appName: string, hostname = os.hostname()): string {
  const text = line.endsWith('\n') ? line.slice(0, -1) : line;
  let sev = 6;
  let time = new Date().toISOString();
  try {
    const o = JSON.parse(text) as { level?: unknown; time?: unknown };
    sev = severity(o.level);
    if (typeof o.time === 'string') time = o.time;
    else if (typeof o.time === 'number') time = new Date(o.time).toISOString();
  } catch {
    /* not JSON: sent as is, severity info */
  }
  const pri = FACILITIES[facility] * 8 + sev;
  return `<${pri}>1 ${time} ${hostname || '-'} ${appName} ${process.pid} access - ${text}`;
}

/** Creates a writer for `opts` (the UDP socket or TCP connection opens on the first message). */
export function createSyslogWriter(opts: SyslogOptions): SyslogWriter {
  const { host, port } = parseHostPort(opts.address)!;
  const facility = opts.facility ?? 'local0';
  const app = opts.appName ?? 'scriptgate';
  const hostname = os.hostname();
  const maxPending = opts.maxPending ?? 1000;
  const maxBuffered = opts.maxBufferedBytes ?? 4 * 1024 * 1024;
  let dropped = 0;
  let closed = false;
  const drop = () => {
    dropped++;
    opts.onDrop?.(1);
  };

  if ((opts.protocol ?? 'udp') === 'udp') {
    let sock: dgram.Socket | undefined;
    return {
      write(line) {
        if (closed) return true;
        if (!sock) {
          sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
          sock.on('error', drop);
          sock.unref();
        }
        sock.send(formatSyslog(line, facility, app, hostname), port, host, (err) => {
          if (err) drop();
        });
        return true;
      },
      get dropped() {
        return dropped;
      },
      close() {
        closed = true;
        sock?.close();
      },
    };
  }

  let conn: net.Socket | undefined;
  let connected = false;
  let pending: string[] = [];
  const frame = (msg: string) => `${Buffer.byteLength(msg)} ${msg}`;
  const open = () => {
    const c = net.connect({ host, port });
    conn = c;
    c.unref();
    c.setNoDelay(true);
    c.on('connect', () => {
      connected = true;
      const out = pending;
      pending = [];
      if (out.length) c.write(out.join(''));
    });
    c.on('error', () => undefined);
    c.on('close', () => {
      if (conn === c) {
        conn = undefined;
        connected = false;
      }
    });
  };
  return {
    write(line) {
      if (closed) return true;
      const msg = frame(formatSyslog(line, facility, app, hostname));
      if (!conn) open();
      // A server that stopped reading must not make the proxy buffer without end.
      if (connected) {
        if (conn!.writableLength < maxBuffered) conn!.write(msg);
        else drop();
      } else if (pending.length < maxPending) pending.push(msg);
      else drop();
      return true;
    },
    get dropped() {
      return dropped;
    },
    close() {
      closed = true;
      conn?.end();
    },
  };
}
