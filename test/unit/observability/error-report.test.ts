/** Script errors grouped by script:line, recent list bounded, and the merge a cluster primary does. */
import { beforeEach, describe, expect, it } from 'vitest';
import { RECENT, errorReport, mergeErrorReports, reportScriptError, resetErrorReport, scriptLocation } from '../../../src/observability/error-report.ts';

beforeEach(() => resetErrorReport());

describe('error report', () => {
  it('reads file:line from script error messages (line 0 for limits that name only the file)', () => {
    expect(scriptLocation('tenants/acme/auth.ts:12:7: access script threw TypeError: x')).toEqual({ script: 'tenants/acme/auth.ts', line: 12 });
    expect(scriptLocation('tenants/acme/loop.ts: rewrite script ran past cpu_ms')).toEqual({ script: 'tenants/acme/loop.ts', line: 0 });
  });

  it('groups by tenant and script:line, counts codes, keeps the newest first', () => {
    const cause = Object.assign(new Error('x'), { stack: 'Error: x\n    at auth.ts:12:7' });
    for (let i = 0; i < 3; i++) reportScriptError({ code: 'PRX_ERR_SCRIPT', message: 'auth.ts:12:7: access script threw x', cause }, { route: 'api', tenant: 'acme', reqId: `r${i}` });
    reportScriptError({ code: 'PRX_ERR_SCRIPT_TIMEOUT', message: 'loop.ts: rewrite script ran past' }, { route: 'api', tenant: 'acme' });
    const r = errorReport();
    expect(r.total).toBe(4);
    expect(r.groups.map((g) => [g.script, g.line, g.count])).toEqual([
      ['auth.ts', 12, 3],
      ['loop.ts', 0, 1],
    ]);
    expect(r.groups[0]!.codes).toEqual({ PRX_ERR_SCRIPT: 3 });
    expect(r.recent[0]!.code).toBe('PRX_ERR_SCRIPT_TIMEOUT');
    expect(r.recent[1]).toMatchObject({ reqId: 'r2', route: 'api', tenant: 'acme', stack: cause.stack });
  });

  it('keeps only the last RECENT errors', () => {
    for (let i = 0; i < RECENT + 20; i++) reportScriptError({ message: `a.ts:${i}:1: boom` }, {});
    const r = errorReport();
    expect(r.recent).toHaveLength(RECENT);
    expect(r.total).toBe(RECENT + 20);
    expect(r.recent[0]!.line).toBe(RECENT + 19);
  });

  it('merges workers: counts summed per group, recent interleaved by time', () => {
    reportScriptError({ message: 'a.ts:1:1: boom' }, { tenant: 't' });
    const one = errorReport();
    resetErrorReport();
    reportScriptError({ message: 'a.ts:1:1: boom' }, { tenant: 't' });
    reportScriptError({ message: 'b.ts:2:1: boom' }, { tenant: 't' });
    const two = errorReport();
    const m = mergeErrorReports([one, two]);
    expect(m.total).toBe(3);
    expect(m.groups.map((g) => [g.script, g.count])).toEqual([
      ['a.ts', 2],
      ['b.ts', 1],
    ]);
    expect(m.recent).toHaveLength(3);
    for (let i = 1; i < m.recent.length; i++) expect(m.recent[i - 1]!.time >= m.recent[i]!.time).toBe(true);
  });
});
