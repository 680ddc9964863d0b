import { describe, expect, it } from 'vitest';
import { CertificateTable, certificateNames } from '../../../src/core/tls-certificates.ts';
import { makePki } from '../../helpers/certs.ts';
import { readFileSync } from 'node:fs';

describe('CertificateTable', () => {
  const pki = makePki();
  const a = pki.leaf('a', ['a.example.test', 'www.a.example.test']);
  const wild = pki.leaf('wild', ['*.wild.example.test']);
  const cnOnly = pki.client('cn-only', 'cn.example.test');

  it('reads names from subjectAltName, else the CN', () => {
    expect(certificateNames(readFileSync(a.cert))).toEqual(['a.example.test', 'www.a.example.test']);
    expect(certificateNames(readFileSync(cnOnly.cert))).toEqual(['cn.example.test']);
  });

  it('looks up exact names first, then a one-label wildcard, else the first certificate', () => {
    const table = new CertificateTable({ certificates: [a, wild], min_version: 'TLSv1.2', verify_client: 'off' });
    const exact = table.lookup('www.a.example.test');
    expect(exact).toBe(table.default);
    const w = table.lookup('x.wild.example.test');
    expect(w).not.toBe(table.default);
    expect(table.lookup('X.WILD.example.test.')).toBe(w);
    expect(table.lookup('wild.example.test')).toBe(table.default);
    expect(table.lookup('a.b.wild.example.test')).toBe(table.default);
  });

  it('a key that does not match its certificate is a ConfigError naming the files', () => {
    expect(() => new CertificateTable({ certificates: [{ cert: a.cert, key: wild.key }], min_version: 'TLSv1.2', verify_client: 'off' })).toThrow(a.cert);
    expect(() => new CertificateTable({ certificates: [{ cert: '/nope.pem', key: a.key }], min_version: 'TLSv1.2', verify_client: 'off' })).toThrow('/nope.pem');
  });
});
