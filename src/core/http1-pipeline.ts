/**
 * One request at a time per HTTP/1.1 connection, as nginx serves pipelined requests: a request
 * that arrives (pipelined) while the response to an earlier one on the same connection is still
 * going out waits for it to finish before it is routed, scripted or sent upstream. So unsafe
 * methods keep their order (RFC 9112 §9.3.2), one connection cannot open an upstream connection
 * per pipelined request, and once a response closes the connection (a refusal with
 * `Connection: close`, an HTTP/1.0 answer without keep-alive) the requests pipelined behind it are
 * never started: their bytes were read by node's parser, but nobody sees their answer, so they must
 * not reach an upstream either.
 *
 * Used by the listener's 'request', 'checkContinue' and 'checkExpectation' handlers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

interface Turns {
  busy: boolean;
  /** The connection closes after the response in progress: start nothing more. */
  closing: boolean;
  waiting: Array<() => void>;
}

const kTurns = Symbol('scriptgate.pipelineTurns');
type TurnSocket = Socket & { [kTurns]?: Turns };

/** Runs `start` now when no earlier response on the connection is in progress, else after it; never once the connection is to close. */
export function inTurn(req: IncomingMessage, res: ServerResponse, start: () => void): void {
  const socket = req.socket as TurnSocket;
  const turns = (socket[kTurns] ??= { busy: false, closing: false, waiting: [] });
  if (turns.closing) return;
  if (turns.busy) {
    turns.waiting.push(() => run(turns, socket, res, start));
    return;
  }
  run(turns, socket, res, start);
}

function run(turns: Turns, socket: Socket, res: ServerResponse, start: () => void): void {
  turns.busy = true;
  let over = false;
  const next = (): void => {
    if (over) return;
    over = true;
    // A response that closes the connection (or a connection already gone) ends the pipeline.
    if (!res.shouldKeepAlive || !res.writableFinished || socket.destroyed) {
      turns.closing = true;
      turns.waiting.length = 0;
      return;
    }
    turns.busy = false;
    turns.waiting.shift()?.();
  };
  res.once('finish', next);
  res.once('close', next);
  start();
}
