/**
 * One request's calls into its tenant's isolate: the host half of `ScriptSession`. Created by
 * `RouteScripts.open()` (no crossing), it sends the request's init record with its first crossing
 * only, keeps nothing of the tenant's on the host, and turns every result into the contract's
 * shapes. rewrite+access are one crossing; header_filter one; body_filter one per chunk (or
 * responseStart: header_filter + the first chunk in one); log and
 * the final free are deferred to the tenant's LogBatch. A session whose state lived in an isolate
 * that has since been recreated (memory exhaustion elsewhere) fails with PRX_ERR_SCRIPT_MEMORY.
 */
import type { Logger } from 'pino';
import { ProxyError } from '../errors.ts';
import { PHASE_ID, type WireBalancerResult, type WireBodyEnvelope, type WireError, type WireHeadResult, type WireLog, type WireRequestResult } from '../sandbox/wire.ts';
import type { BalancerChoice, BalancerInput, LogSummary, RequestPhasesResult, ResponseHead, ScriptRequest, ScriptSession } from './contract.ts';
import { balancerRecord, checkHeaderList, checkStatus, checkString, headerLines, initRecord, parseResult, responseRecord } from './wire-codec.ts';
import type { LogOutcomeSink } from './log-batch.ts';
import type { RouteScriptsImpl } from './route-scripts.ts';
import { logRateOf, ScriptLogSink } from './script-log.ts';
import { reportScriptError } from '../observability/error-report.ts';
import { Utf8Chunks, type Utf8Piece } from './utf8-chunks.ts';

const CONTINUE: RequestPhasesResult = Object.freeze({ action: 'continue' }) as RequestPhasesResult;
const T = 116; // 't'
const B = 98; // 'b'
const EMPTY = Buffer.alloc(0);
const RESPONSE_PHASES: readonly number[] = [PHASE_ID.header_filter, PHASE_ID.body_filter];

export class ScriptSessionImpl implements ScriptSession, LogOutcomeSink {
  readonly #rs: RouteScriptsImpl;
  readonly #sid: number;
  readonly #req: ScriptRequest;
  readonly #sink: ScriptLogSink;
  /** Epoch of the isolate that holds this request's state; 0 = none yet. */
  #epoch = 0;
  #head: ResponseHead | undefined;
  #headInIsolate = false;
  #utf8: Utf8Chunks | undefined;
  #logged = false;
  #closed = false;

  constructor(rs: RouteScriptsImpl, sid: number, req: ScriptRequest, logger: Logger | (() => Logger)) {
    this.#rs = rs;
    this.#sid = sid;
    this.#req = req;
    this.#sink = new ScriptLogSink(logger, rs.tenant, req.route, rs.sandbox.mapper, rs.sandbox.logBytesPerS > 0 ? logRateOf(rs.sandbox, rs.sandbox.logBytesPerS) : undefined);
  }

  get keys(): ReadonlyArray<string | null> {
    return this.#rs.keys;
  }

  /** The init record when the isolate does not hold this request yet, else ''. */
  #init(): string {
    if (this.#epoch === 0) return initRecord(this.#rs.index, this.#req);
    this.#checkState();
    return '';
  }

  /** Throws PRX_ERR_SCRIPT_MEMORY when the isolate that held this request's state is gone. */
  #checkState(): void {
    const sb = this.#rs.sandbox;
    if (this.#epoch !== sb.epoch || !sb.alive) {
      throw new ProxyError('PRX_ERR_SCRIPT_MEMORY', `tenant ${sb.tenant}: its isolate was recreated (another request exhausted memory_mb, or was cut off while a built-in loaded); this request's script state is lost`);
    }
  }

  /** One crossing; afterwards the session knows which isolate holds its state (also after a timeout). */
  #call(entry: 'req' | 'bal' | 'res' | 'body' | 'rs', args: Array<string | number | boolean>, phases: readonly number[]): unknown {
    const rs = this.#rs;
    const sb = rs.sandbox;
    if (rs.flushLogsFirst && rs.batch.pending > 0) {
      rs.batch.flush();
      // A log phase that exhausted memory_mb took this request's state with the isolate.
      if (this.#epoch > 0) this.#checkState();
    }
    if (this.#epoch === 0) sb.admit();
    try {
      return sb.call(entry, args, rs.keys, phases);
    } finally {
      if (sb.alive) this.#epoch = sb.epoch;
    }
  }

  #done(logs: WireLog[] | undefined, phase: string): void {
    if (logs) this.#sink.emit(logs, phase);
  }

  requestPhases(req: ScriptRequest): RequestPhasesResult {
    const rs = this.#rs;
    const init = this.#epoch === 0 ? initRecord(rs.index, req) : this.#init();
    // The body (route script_body) rides along as bytes in a latin1 string, once.
    const args: Array<string | number> = init && req.body ? [this.#sid, init, req.body.toString('latin1')] : [this.#sid, init];
    const out = this.#call('req', args, rs.requestPhaseIds);
    if (out === '') return CONTINUE;
    const o = parseResult<WireRequestResult>(checkString(out, 'rewrite/access'), 'rewrite/access');
    this.#done(o.l, rs.has.rewrite ? 'rewrite' : 'access');
    if (o.e) throw rs.sandbox.scriptError(rs.keys, o.e);
    if (o.x !== undefined) {
      const body = o.xbin ? Buffer.from(checkString(o.xb, 'exit body'), 'latin1') : checkString(o.xb ?? '', 'exit body');
      return { action: 'exit', status: checkStatus(o.x, 'exit'), headers: checkHeaderList(o.xh ?? [], 'exit headers'), body };
    }
    const r: RequestPhasesResult = { action: 'continue' };
    if (o.m !== undefined) r.method = checkString(o.m, 'method');
    if (o.p !== undefined) r.path = checkString(o.p, 'path');
    if (o.q !== undefined) r.query = checkString(o.q, 'query');
    if (o.u !== undefined) r.upstream = checkString(o.u, 'upstream');
    if (o.h !== undefined) r.headers = headerLines(o.h, 'request headers');
    if (o.bd !== undefined) r.body = Buffer.from(checkString(o.bd, 'request body'), 'latin1');
    return r;
  }

  balancer(input: BalancerInput): BalancerChoice | undefined {
    const rs = this.#rs;
    if (!rs.has.balancer) return undefined;
    const init = this.#epoch === 0 ? initRecord(rs.index, this.#req) : this.#init();
    const out = this.#call('bal', [this.#sid, init, balancerRecord(input)], [PHASE_ID.balancer]);
    if (out === '') return undefined;
    const o = parseResult<WireBalancerResult>(checkString(out, 'balancer'), 'balancer');
    this.#done(o.l, 'balancer');
    if (o.e) throw rs.sandbox.scriptError(rs.keys, o.e);
    const choice: BalancerChoice = {};
    if (o.u !== undefined) choice.upstream = checkString(o.u, 'balancer upstream');
    if (o.t !== undefined) choice.address = checkString(o.t, 'balancer target');
    if (o.k !== undefined) choice.hashKey = checkString(o.k, 'balancer hash key');
    return choice;
  }

  headerFilter(head: ResponseHead): ResponseHead | undefined {
    const rs = this.#rs;
    this.#head = head;
    if (!rs.has.header_filter) return undefined;
    const init = this.#init();
    const out = this.#call('res', [this.#sid, init, responseRecord(head)], [PHASE_ID.header_filter]);
    this.#headInIsolate = true;
    if (out === '') return undefined;
    const o = parseResult<WireHeadResult>(checkString(out, 'header_filter'), 'header_filter');
    this.#done(o.l, 'header_filter');
    if (o.e) throw rs.sandbox.scriptError(rs.keys, o.e);
    const next: ResponseHead = {
      status: o.s === undefined ? head.status : checkStatus(o.s, 'response status'),
      headers: o.h === undefined ? head.headers : headerLines(o.h, 'response headers'),
    };
    this.#head = next;
    return next;
  }

  bodyFilter(chunk: Buffer, eof: boolean): Buffer | undefined {
    const rs = this.#rs;
    if (!rs.has.body_filter || (chunk.length === 0 && !eof)) return undefined;
    const piece = (this.#utf8 ??= new Utf8Chunks()).next(chunk, eof);
    const init = this.#init();
    const record = !this.#headInIsolate && this.#head ? responseRecord(this.#head) : '';
    const out = this.#call('body', [this.#sid, init, record, piece.text, eof], [PHASE_ID.body_filter]);
    if (record) this.#headInIsolate = true;
    return this.#bodyResult(out, piece);
  }

  /** Decodes body_filter's result (null = unchanged, 't'/'b' + data, 'j' + envelope). */
  #bodyResult(out: unknown, piece: Utf8Piece): Buffer | undefined {
    if (out === null) return piece.same ? undefined : piece.bytes;
    const s = checkString(out, 'body_filter');
    const tag = s.charCodeAt(0);
    if (tag === T) return Buffer.from(s.slice(1), 'utf8');
    if (tag === B) return Buffer.from(s.slice(1), 'latin1');
    const env = parseResult<WireBodyEnvelope>(s.slice(1), 'body_filter');
    this.#done(env.l, 'body_filter');
    if (env.e) throw this.#rs.sandbox.scriptError(this.#rs.keys, env.e);
    if (env.r === null) return piece.same ? undefined : piece.bytes;
    return Buffer.from(checkString(env.d, 'body_filter'), env.r === 'b' ? 'latin1' : 'utf8');
  }

  responseStart(head: ResponseHead, chunk: Buffer | undefined, eof: boolean): { head: ResponseHead | undefined; body: Buffer | undefined } {
    const rs = this.#rs;
    const runBody = rs.has.body_filter && ((chunk !== undefined && chunk.length > 0) || eof);
    if (!rs.has.header_filter || !runBody) {
      const h = this.headerFilter(head);
      return { head: h, body: runBody ? this.bodyFilter(chunk ?? EMPTY, eof) : undefined };
    }
    this.#head = head;
    const piece = (this.#utf8 ??= new Utf8Chunks()).next(chunk ?? EMPTY, eof);
    const init = this.#init();
    const out = this.#call('rs', [this.#sid, init, responseRecord(head), piece.text, eof], RESPONSE_PHASES);
    this.#headInIsolate = true;
    if (out === '') return { head: undefined, body: piece.same ? undefined : piece.bytes };
    const s = checkString(out, 'header_filter/body_filter');
    const colon = s.indexOf(':');
    const n = colon > 0 ? Number(s.slice(0, colon)) : NaN;
    if (!(n >= 0) || colon + 1 + n > s.length) throw new ProxyError('PRX_ERR_SCRIPT_RESULT', 'header_filter/body_filter: malformed result from the sandbox');
    let next: ResponseHead | undefined;
    if (n > 0) {
      const o = parseResult<WireHeadResult>(s.slice(colon + 1, colon + 1 + n), 'header_filter');
      this.#done(o.l, 'header_filter');
      if (o.e) throw rs.sandbox.scriptError(rs.keys, o.e);
      if (o.s !== undefined || o.h !== undefined) {
        next = {
          status: o.s === undefined ? head.status : checkStatus(o.s, 'response status'),
          headers: o.h === undefined ? head.headers : headerLines(o.h, 'response headers'),
        };
        this.#head = next;
      }
    }
    const rest = colon + 1 + n;
    const body = this.#bodyResult(rest === s.length ? null : s.slice(rest), piece);
    return { head: next, body };
  }

  log(summary: LogSummary): void {
    const rs = this.#rs;
    if (this.#logged || !rs.has.log) return;
    this.#logged = true;
    let init: string;
    try {
      init = this.#init();
    } catch (err) {
      this.#sink.logger.warn({ err }, 'log phase skipped');
      return;
    }
    const t = summary.timings;
    const record = JSON.stringify([
      this.#sid,
      init,
      summary.status,
      summary.bytesSent,
      summary.bytesReceived,
      t.total,
      t.upstreamConnect,
      t.upstreamHeader,
      t.upstreamBody,
      summary.upstreamAddress,
      summary.error,
      summary.responseHeaders.join('\n'),
    ]);
    // The state now belongs to the batch: it runs log and then frees it.
    this.#epoch = -1;
    rs.batch.enqueue(this.#sid, record, this);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const sb = this.#rs.sandbox;
    if (this.#epoch > 0 && this.#epoch === sb.epoch && sb.alive) this.#rs.batch.enqueue(this.#sid, `[${this.#sid}]`);
    this.#epoch = -1;
  }

  /** LogOutcomeSink: script log lines of the log phase. */
  logs(entries: WireLog[]): void {
    this.#sink.emit(entries, 'log');
  }

  /** LogOutcomeSink: the log phase failed; logged, never thrown (the response is long gone). */
  failed(error: WireError): void {
    const err = this.#rs.sandbox.scriptError(this.#rs.keys, error);
    this.#sink.logger.error({ err, code: err.code }, err.message);
    reportScriptError(err, { route: this.#req.route, tenant: this.#rs.tenant, reqId: this.#req.id });
  }
}
