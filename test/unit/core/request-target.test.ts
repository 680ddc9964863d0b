import { describe, expect, it } from 'vitest';
import { escapesPrefix, parseRequestTarget, removeDotSegments } from '../../../src/core/request-target.ts';

describe('removeDotSegments', () => {
  it.each([
    ['/a/b/c', '/a/b/c'],
    ['/a/./b', '/a/b'],
    ['/a/b/../c', '/a/c'],
    ['/a/b/..', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/a/../../', undefined],
    ['/..', undefined],
    ['/a/..b/c', '/a/..b/c'],
    ['/a/.b', '/a/.b'],
  ])('%s → %s', (input, out) => {
    expect(removeDotSegments(input)).toBe(out);
  });
});

describe('parseRequestTarget', () => {
  it('splits path and query and drops a fragment', () => {
    expect(parseRequestTarget('/a/b?x=1&y=/../z#frag', 'GET')).toEqual({ path: '/a/b', query: 'x=1&y=/../z' });
  });

  it('decodes unreserved escapes and upper-cases the others', () => {
    expect(parseRequestTarget('/%7euser/%41%2f%5c%3a', 'GET')!.path).toBe('/~user/A%2F%5C%3A');
  });

  it('removes encoded dot-segments after decoding them', () => {
    expect(parseRequestTarget('/public/%2e%2e/admin/x', 'GET')!.path).toBe('/admin/x');
    expect(parseRequestTarget('/public/%2E./admin/x', 'GET')!.path).toBe('/admin/x');
  });

  it('refuses paths above the root, bad escapes, NUL and control bytes', () => {
    for (const bad of ['/..', '/%2e%2e/x', '/a/%zz', '/a/%4', '/a%00b', '/a b', '/a\u0001b']) expect(parseRequestTarget(bad, 'GET'), bad).toBeUndefined();
  });

  it('refuses a target that is neither origin-form nor absolute-form', () => {
    expect(parseRequestTarget('foo', 'GET')).toBeUndefined();
    expect(parseRequestTarget('*', 'GET')).toBeUndefined();
    expect(parseRequestTarget('example.com:443', 'CONNECT')).toBeUndefined();
  });

  it('accepts OPTIONS *', () => {
    expect(parseRequestTarget('*', 'OPTIONS')).toEqual({ path: '*', query: '' });
  });

  it('takes the authority of an absolute-form target', () => {
    expect(parseRequestTarget('http://Example.com:8080/a/../b?q', 'GET')).toEqual({ path: '/b', query: 'q', authority: 'Example.com:8080' });
    expect(parseRequestTarget('http://example.com', 'GET')).toEqual({ path: '/', query: '', authority: 'example.com' });
  });

  it('refuses userinfo in an absolute-form target (RFC 9110 §4.2.4: it obscures the authority)', () => {
    expect(parseRequestTarget('http://user:pw@Example.com:8080/a', 'GET')).toBeUndefined();
    expect(parseRequestTarget('http://evil@/x', 'GET')).toBeUndefined();
  });
});

describe('escapesPrefix', () => {
  it('is false for plain paths inside the prefix', () => {
    expect(escapesPrefix('/public/a', '/public/')).toBe(false);
    expect(escapesPrefix('/public/a%20b', '/public/')).toBe(false);
  });

  it('is true when decoding %2F or %5C, or reading \\ as /, climbs out of the prefix', () => {
    expect(escapesPrefix('/public/..%2Fadmin/x', '/public/')).toBe(true);
    expect(escapesPrefix('/public/..%5Cadmin/x', '/public/')).toBe(true);
    expect(escapesPrefix('/public/..\\admin/x', '/public/')).toBe(true);
  });

  it('reads `;params` the way Tomcat does: /..;/ climbs', () => {
    expect(escapesPrefix('/public/..;/admin/x', '/public/')).toBe(true);
    expect(escapesPrefix('/public/..;x=1/admin/x', '/public/')).toBe(true);
    expect(escapesPrefix('/public/a;jsessionid=1', '/public/')).toBe(false);
  });

  it('is true when the strict reading climbs above the root, whatever the prefix', () => {
    expect(escapesPrefix('/..%2F..%2Fetc', '/')).toBe(true);
  });

  it('is false when the strict reading stays inside a prefix without trailing slash', () => {
    expect(escapesPrefix('/api/a%2Fb', '/api')).toBe(false);
    expect(escapesPrefix('/api/..%2Fx', '/api')).toBe(true);
  });
});
