/**
 * ctx.log fields on their way into pino: a field named like one of the proxy's own keys keeps its
 * value under `field_<name>` instead of vanishing or overwriting tenant, route, time or level.
 */
import { describe, expect, it } from 'vitest';
import { ScriptLogSink } from '../../../src/phases/script-log.ts';
import { captureLogger } from './fixture.ts';

describe('ScriptLogSink', () => {
  it('keeps a script field named like a reserved key as field_<name>', () => {
    const { logger, logs } = captureLogger();
    const sink = new ScriptLogSink(logger.child({ reqId: 'r1' }), 'acme', 'api');
    sink.emit([[1, 'hello', JSON.stringify({ time: 'noon', tenant: 'evil', level: 'x', phase: 'p', msg: 'm', user: 'ann' })]], 'access');
    const line = logs.at(-1)!;
    expect(line).toMatchObject({ msg: 'hello', tenant: 'acme', route: 'api', reqId: 'r1', phase: 'access', user: 'ann', field_time: 'noon', field_tenant: 'evil', field_level: 'x', field_phase: 'p', field_msg: 'm' });
    expect(typeof line.time).toBe('number');
    expect(line.level).toBe(30);
  });
});
