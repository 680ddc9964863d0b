/**
 * Host side of the wire format (../sandbox/wire.ts): builds the init and response records that go
 * into the isolate and checks the shape of what comes back. Runs on every crossing, so it is
 * plain string joins and type checks; a result of the wrong shape (a subverted bootstrap) becomes
 * PRX_ERR_SCRIPT_RESULT instead of reaching the proxy core.
 */
import { ProxyError } from '../errors.ts';
import type { BalancerInput, ResponseHead, ScriptRequest } from './contract.ts';

/** `routeIndex\nid\nmethod\npath\nquery\nhttpVersion\nscheme\nclientIp\nclientPort\ntls[\nheaders…]` */
export function initRecord(routeIndex: number, req: ScriptRequest): string {
  const head = `${routeIndex}\n${req.id}\n${req.method}\n${req.path}\n${req.query}\n${req.httpVersion}\n${req.scheme}\n${req.clientIp}\n${req.clientPort}\n${req.tls ?? ''}`;
  return req.headers.length ? `${head}\n${req.headers.join('\n')}` : head;
}

/** `status[\nname\nvalue…]` */
export function responseRecord(head: ResponseHead): string {
  return head.headers.length ? `${head.status}\n${head.headers.join('\n')}` : String(head.status);
}

/** `upstream\ntries\nfailureCode\nfailureAddress[\naddress\nhealthy\ninFlight\nweight…]` */
export function balancerRecord(b: BalancerInput): string {
  let out = `${b.upstream}\n${b.tries}\n${b.failure?.code ?? ''}\n${b.failure?.address ?? ''}`;
  for (const t of b.targets) out += `\n${t.address}\n${t.healthy ? 1 : 0}\n${t.inFlight}\n${t.weight}`;
  return out;
}

/** Throws PRX_ERR_SCRIPT_RESULT unless `v` is a flat list of strings with an even length. */
export function checkHeaderList(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.length % 2 !== 0 || !v.every((x) => typeof x === 'string')) {
    throw new ProxyError('PRX_ERR_SCRIPT_RESULT', `${what}: malformed header list from the sandbox`);
  }
  return v as string[];
}

/**
 * The header list of a result (names and values joined by '\n', '' = none). Throws
 * PRX_ERR_SCRIPT_RESULT unless it is a string that splits into name/value pairs.
 */
export function headerLines(v: unknown, what: string): string[] {
  if (typeof v !== 'string') throw new ProxyError('PRX_ERR_SCRIPT_RESULT', `${what}: malformed header list from the sandbox`);
  if (v === '') return [];
  const list = v.split('\n');
  if (list.length % 2 !== 0) throw new ProxyError('PRX_ERR_SCRIPT_RESULT', `${what}: malformed header list from the sandbox`);
  return list;
}

export function checkString(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new ProxyError('PRX_ERR_SCRIPT_RESULT', `${what}: expected a string from the sandbox`);
  return v;
}

export function checkStatus(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 100 || v > 599) throw new ProxyError('PRX_ERR_SCRIPT_RESULT', `${what}: invalid status from the sandbox`);
  return v;
}

/** Parses a JSON result of the bootstrap; anything that does not parse to an object is PRX_ERR_SCRIPT_RESULT. */
export function parseResult<T extends object>(text: string, what: string): T {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    v = undefined;
  }
  if (typeof v !== 'object' || v === null) throw new ProxyError('PRX_ERR_SCRIPT_RESULT', `${what}: malformed result from the sandbox`);
  return v as T;
}
