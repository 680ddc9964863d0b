/** RFC 5424 formatting of pino lines, and the TCP writer's bound on a server that stops reading. */
import net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createSyslogWriter, formatSyslog } from '../../../src/observability/syslog.ts';

describe('formatSyslog', () => {
  it('PRI from facility and the line level, the line time, host, app, pid, msgid access', () => {
    const line = JSON.stringify({ level: 'warn', time: '2024-01-02T03:04:05.678Z', msg: 'access' }) + '\n';
    expect(formatSyslog(line, 'local0', 'sg', 'h1')).toBe(`<132>1 2024-01-02T03:04:05.678Z h1 sg ${process.pid} access - ${line.trim()}`);
    expect(formatSyslog(JSON.stringify({ level: 30 }), 'user', 'sg', 'h1')).toMatch(/^<14>1 /);
    expect(formatSyslog(JSON.stringify({ level: 'error' }), 'kern', 'sg', 'h1')).toMatch(/^<3>1 /);
  });
});

describe('createSyslogWriter over TCP', () => {
  it('drops, and counts, messages once a server that stopped reading holds maxBufferedBytes unsent', async () => {
    // A server that accepts and never reads: the kernel buffers fill, then the writer's own.
    const held: net.Socket[] = [];
    const deaf = net.createServer((s) => {
      s.pause();
      held.push(s);
    });
    await new Promise<void>((r) => deaf.listen(0, '127.0.0.1', r));
    onTestFinished(() => {
      for (const s of held) s.destroy();
      deaf.close();
    });
    const connected = new Promise<void>((r) => deaf.once('connection', () => r()));
    let reported = 0;
    const out = createSyslogWriter({ address: `127.0.0.1:${(deaf.address() as net.AddressInfo).port}`, protocol: 'tcp', maxBufferedBytes: 256 * 1024, onDrop: (n) => (reported += n) });
    onTestFinished(() => out.close());
    const line = JSON.stringify({ level: 30, msg: 'access', pad: 'x'.repeat(16 * 1024) }) + '\n';
    out.write(line);
    await connected;
    // Let the connection report itself connected before the flood.
    await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 2000; i++) out.write(line); // ~32 MiB offered
    expect(out.dropped).toBeGreaterThan(1000);
    expect(reported).toBe(out.dropped);
    const before = out.dropped;
    for (let i = 0; i < 2000; i++) out.write(line);
    // Nothing more is buffered for a server that reads nothing: every one of these is dropped.
    expect(out.dropped - before).toBe(2000);
    expect(reported).toBe(out.dropped);
  });
});
