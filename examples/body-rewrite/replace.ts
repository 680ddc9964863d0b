// body_filter_by_script: replace every "http://old.example.com" with "https://new.example.com" in a
// streamed body. A match can be split across chunks, so the longest tail that could begin a match
// is held back in ctx.vars and prefixed to the next chunk; at eof everything left is flushed.
import type { BodyFilterContext } from 'scriptgate/runtime-api';

declare module 'scriptgate/runtime-api' {
  interface Vars {
    carry?: string;
  }
}

const FROM = 'http://old.example.com';
const TO = 'https://new.example.com';

export default function bodyFilter(ctx: BodyFilterContext, chunk: string, eof: boolean) {
  const text = (ctx.vars.carry ?? '') + chunk;
  let out = '';
  let i = 0;
  for (let j = text.indexOf(FROM); j >= 0; j = text.indexOf(FROM, i)) {
    out += text.slice(i, j) + TO;
    i = j + FROM.length;
  }
  let rest = text.slice(i);
  let keep = 0;
  if (!eof) {
    for (let k = Math.min(FROM.length - 1, rest.length); k > 0; k--) {
      if (FROM.startsWith(rest.slice(rest.length - k))) {
        keep = k;
        break;
      }
    }
  }
  ctx.vars.carry = rest.slice(rest.length - keep);
  rest = rest.slice(0, rest.length - keep);
  return out + rest;
}
