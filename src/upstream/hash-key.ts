/**
 * The consistent-hash key of a request, from the upstream's `hash_key`: `header:<name>`,
 * `cookie:<name>`, `client_ip` (default) or `path`. Runs once per request, on the headers that go
 * upstream (so a rewrite script's header changes count). Returns undefined when the request has no
 * such header or cookie; the balancer then picks a random target.
 */

export type HashKeySpec =
  | { kind: 'header'; name: string }
  | { kind: 'cookie'; name: string }
  | { kind: 'client_ip' }
  | { kind: 'path' };

/** Accepted `hash_key` spellings (config/schema.ts validates with the same pattern). */
export const HASH_KEY_PATTERN = /^(header:[!#$%&'*+.^_`|~0-9A-Za-z-]+|cookie:[^\s;=,]+|client_ip|path)$/;

export function parseHashKey(spec: string): HashKeySpec {
  if (spec.startsWith('header:')) return { kind: 'header', name: spec.slice(7).toLowerCase() };
  if (spec.startsWith('cookie:')) return { kind: 'cookie', name: spec.slice(7) };
  return spec === 'path' ? { kind: 'path' } : { kind: 'client_ip' };
}

export interface KeySource {
  /** Flat `[name, value, …]` list with lower-case names. */
  headers: readonly string[];
  clientIp: string;
  /** Path without the query. */
  path: string;
}

export function extractHashKey(spec: HashKeySpec, src: KeySource): string | undefined {
  switch (spec.kind) {
    case 'client_ip':
      return src.clientIp || undefined;
    case 'path':
      return src.path;
    case 'header':
      for (let i = 0; i < src.headers.length; i += 2) if (src.headers[i] === spec.name) return src.headers[i + 1];
      return undefined;
    case 'cookie':
      for (let i = 0; i < src.headers.length; i += 2) {
        if (src.headers[i] !== 'cookie') continue;
        for (const part of src.headers[i + 1]!.split(';')) {
          const eq = part.indexOf('=');
          if (eq > 0 && part.slice(0, eq).trim() === spec.name) return part.slice(eq + 1).trim();
        }
      }
      return undefined;
  }
}
