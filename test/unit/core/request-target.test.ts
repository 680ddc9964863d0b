import { describe, expect, it } from 'vitest';
import { parseRequestTarget, removeDotSegments, routingPath } from '../../../src/core/request-target.ts';

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

describe('routingPath (the strict reading routes match on)', () => {
  it('is the path itself when there is nothing to decode', () => {
    expect(routingPath('/public/a')).toBe('/public/a');
  });

  it('decodes every escape once, reads \\ as / and drops ;params, then merges slashes and removes dot-segments', () => {
    expect(routingPath('/public/..%2Fadmin/x')).toBe('/admin/x');
    expect(routingPath('/public/..%5Cadmin/x')).toBe('/admin/x');
    expect(routingPath('/public/..\\admin/x')).toBe('/admin/x');
    expect(routingPath('/%2Fadmin/x')).toBe('/admin/x');
    expect(routingPath('/pub/%2F..%2Fsecret')).toBe('/secret');
    expect(routingPath('/public/a%20b')).toBe('/public/a b');
    expect(routingPath('/%252F')).toBe('/%2F');
  });

  it('reads `;params` the way Tomcat does: /..;/ climbs', () => {
    expect(routingPath('/public/..;/admin/x')).toBe('/admin/x');
    expect(routingPath('/public/..;x=1/admin/x')).toBe('/admin/x');
    expect(routingPath('/public/a;jsessionid=1')).toBe('/public/a');
  });

  it('is undefined when the reading climbs above the root or its escapes are not UTF-8', () => {
    expect(routingPath('/..%2F..%2Fetc')).toBeUndefined();
    expect(routingPath('/a/%C0%AE%C0%AE/x')).toBeUndefined();
  });
});

describe('parseRequestTarget merges repeated slashes', () => {
  it('//a///b/ is /a/b/, and a merged .. is resolved after', () => {
    expect(parseRequestTarget('//a///b/', 'GET')!.path).toBe('/a/b/');
    expect(parseRequestTarget('/a//..//b', 'GET')!.path).toBe('/b');
  });
});
