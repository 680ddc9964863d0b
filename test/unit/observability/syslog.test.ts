/** RFC 5424 formatting of pino lines. */
import { describe, expect, it } from 'vitest';
import { formatSyslog } from '../../../src/observability/syslog.ts';

describe('formatSyslog', () => {
  it('PRI from facility and the line level, the line time, host, app, pid, msgid access', () => {
    const line = JSON.stringify({ level: 'warn', time: '2024-01-02T03:04:05.678Z', msg: 'access' }) + '\n';
    expect(formatSyslog(line, 'local0', 'sg', 'h1')).toBe(`<132>1 2024-01-02T03:04:05.678Z h1 sg ${process.pid} access - ${line.trim()}`);
    expect(formatSyslog(JSON.stringify({ level: 30 }), 'user', 'sg', 'h1')).toMatch(/^<14>1 /);
    expect(formatSyslog(JSON.stringify({ level: 'error' }), 'kern', 'sg', 'h1')).toMatch(/^<3>1 /);
  });
});
