/**
 * A route's compiled scripts inside one generation: which phases it defines (`has`, so the core
 * skips the others at zero cost) and `open()`, which starts a request's session without crossing
 * into the isolate. Created by createScriptHost for every route with a `*_by_script` key.
 */
import type { Logger } from 'pino';
import { PHASES, type Phase } from '../config/schema.ts';
import type { TenantSandbox } from '../sandbox/tenant-sandbox.ts';
import type { RouteScripts, ScriptRequest, ScriptSession } from './contract.ts';
import type { LogBatch } from './log-batch.ts';
import { PHASE_ID } from '../sandbox/wire.ts';
import { ScriptSessionImpl } from './session.ts';

let nextSid = 1;

export class RouteScriptsImpl implements RouteScripts {
  readonly has: Readonly<Record<Phase, boolean>>;
  /** Index of the route in config.routes. */
  readonly index: number;
  /** Script key per phase (index = wire phase id), null where the route defines none. */
  readonly keys: ReadonlyArray<string | null>;
  /** Phase ids of rewrite/access that this route defines (for timeout messages). */
  readonly requestPhaseIds: readonly number[];
  readonly sandbox: TenantSandbox;
  readonly batch: LogBatch;
  /**
   * True when a script of this route other than its log script may use a shared dict: the
   * tenant's deferred log phases then run before each crossing of this route, so it sees their
   * writes (as nginx runs log_by_lua before the client has the response). Routes that cannot read
   * shared dicts leave the log batch alone.
   */
  readonly flushLogsFirst: boolean;

  constructor(index: number, keys: ReadonlyArray<string | null>, sandbox: TenantSandbox, batch: LogBatch) {
    this.index = index;
    this.keys = keys;
    this.sandbox = sandbox;
    this.batch = batch;
    const has = {} as Record<Phase, boolean>;
    PHASES.forEach((p, i) => (has[p] = keys[i] !== null));
    this.has = Object.freeze(has);
    this.requestPhaseIds = [0, 1].filter((i) => keys[i] !== null);
    this.flushLogsFirst = keys.some((k, i) => k !== null && i !== PHASE_ID.log && sandbox.mayUseShared(k));
  }

  get tenant(): string {
    return this.sandbox.tenant;
  }

  open(req: ScriptRequest, logger: Logger | (() => Logger)): ScriptSession {
    const sid = nextSid;
    nextSid = nextSid >= 0x3fffffff ? 1 : nextSid + 1;
    return new ScriptSessionImpl(this, sid, req, logger);
  }
}
