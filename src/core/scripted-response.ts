/**
 * The response side of a route with a body_filter script: header_filter and body_filter with as
 * few isolate crossings as the arrival of data allows. Created by the exchange when the upstream's
 * response head arrives on such a route; it then gets the head, each body chunk and the end.
 *
 * Nothing is written until it is known what comes next in the same tick: undici hands over the
 * head, the chunks and the end that one socket read carried synchronously, so a small response
 * costs ONE crossing (`responseStart`: header_filter + body_filter on the whole body with
 * eof=true) instead of three, and a streamed one costs one per chunk with `eof` riding on the last
 * chunk. Whatever is held is sent on the next tick, so streaming (SSE, long polls) is delayed by at
 * most one tick, never buffered.
 */
import { ProxyError } from '../errors.ts';
import type { ResponseHead, ScriptSession } from '../phases/contract.ts';

/** What the stage needs from its exchange. */
export interface ResponseWriter {
  /** Sends the (filtered) head. Returns false when it could not be sent (the stage then stops). */
  head(head: ResponseHead, changed: boolean): boolean;
  /** Writes body bytes toward the client (the exchange handles back-pressure). */
  write(data: Buffer): void;
  end(): void;
  /** A script failed: 500 before the head was sent, an aborted response after. */
  fail(err: unknown): void;
}

const EMPTY = Buffer.alloc(0);

export class ScriptedResponse {
  readonly #session: ScriptSession;
  readonly #writer: ResponseWriter;
  #head: ResponseHead | undefined;
  #held: Buffer | undefined;
  #scheduled = false;
  #dead = false;

  constructor(session: ScriptSession, writer: ResponseWriter) {
    this.#session = session;
    this.#writer = writer;
  }

  /** The upstream's head (hop-by-hop headers already removed). */
  start(head: ResponseHead): void {
    this.#head = head;
    this.#schedule();
  }

  /** One body chunk from the upstream. */
  data(chunk: Buffer): void {
    if (this.#dead) return;
    if (this.#held) this.#run(this.#held, false);
    this.#held = chunk;
    this.#schedule();
  }

  /** The upstream's body ended: the held chunk (if any) goes through body_filter with eof=true. */
  end(): void {
    if (this.#dead) return;
    this.#run(this.#held, true);
    if (!this.#dead) this.#writer.end();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    process.nextTick(flushHeld, this);
  }

  /** Next tick: send what is held (head and/or a chunk) without waiting any longer. */
  flush(): void {
    this.#scheduled = false;
    if (this.#dead || (!this.#head && !this.#held)) return;
    this.#run(this.#held, false);
  }

  #run(chunk: Buffer | undefined, eof: boolean): void {
    this.#held = undefined;
    let body: Buffer | undefined;
    try {
      const head = this.#head;
      if (head) {
        this.#head = undefined;
        let out: ResponseHead | undefined;
        const session = this.#session;
        if (session.responseStart) {
          const r = session.responseStart(head, chunk, eof);
          out = r.head;
          body = r.body ?? chunk;
        } else {
          // On a route without header_filter this only records the head for body_filter's ctx.response.
          out = session.headerFilter(head);
          if (chunk || eof) body = session.bodyFilter(chunk ?? EMPTY, eof) ?? chunk;
        }
        if (!this.#writer.head(out ?? head, out !== undefined)) {
          this.#dead = true;
          return;
        }
      } else if (chunk || eof) {
        body = this.#session.bodyFilter(chunk ?? EMPTY, eof) ?? chunk;
      }
    } catch (err) {
      this.#dead = true;
      this.#writer.fail(err instanceof Error ? err : new ProxyError('PRX_ERR_SCRIPT', String(err)));
      return;
    }
    if (body && body.length > 0) this.#writer.write(body);
  }
}

function flushHeld(stage: ScriptedResponse): void {
  stage.flush();
}
