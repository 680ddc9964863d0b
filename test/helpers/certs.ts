/**
 * Test certificates made with the openssl CLI into a temp folder: a local CA, server leaves with
 * SAN names, and client certificates for mTLS. P-256 keys keep it fast (a few ms each).
 * `makePki` gives file paths (for configs); `createTestCa` also reads them into Buffers (for
 * node:tls servers).
 *
 * @example
 *   const pki = makePki();
 *   const leaf = pki.leaf('a', ['a.example.test']); // { cert, key } file paths
 *   const ca = createTestCa();
 *   const origin = ca.issue('origin', 'DNS:one.one.one.one,IP:127.0.0.1'); // Buffers and paths
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface CertFiles {
  cert: string;
  key: string;
}

export interface Pki {
  dir: string;
  ca: CertFiles;
  /** A server certificate for `names` (first one is the CN), signed by this CA; an EC P-256 key unless `keyType` is rsa. */
  leaf(file: string, names: string[], keyType?: 'ec' | 'rsa'): CertFiles;
  /** A client certificate (extendedKeyUsage clientAuth), signed by this CA. */
  client(file: string, cn: string): CertFiles;
  /** A leaf with the subjectAltName `san` as openssl writes it (`DNS:a,IP:127.0.0.1`). */
  issue(file: string, san: string, usage?: 'serverAuth' | 'clientAuth'): CertFiles;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A new CA in its own temp folder (or in `dir`). */
export function makePki(dir = mkdtempSync(path.join(os.tmpdir(), 'sg-pki-')), caName = 'ca'): Pki {
  const ca = { cert: path.join(dir, `${caName}.pem`), key: path.join(dir, `${caName}.key`) };
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', ca.key, '-out', ca.cert, '-days', '2', '-subj', `/CN=scriptgate test ${caName}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  const sign = (file: string, cn: string, ext: string, keyType: 'ec' | 'rsa' = 'ec'): CertFiles => {
    const out = { cert: path.join(dir, `${file}.pem`), key: path.join(dir, `${file}.key`) };
    const csr = path.join(dir, `${file}.csr`);
    const extFile = path.join(dir, `${file}.ext`);
    writeFileSync(extFile, ext);
    const newKey = keyType === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
    openssl(['req', ...newKey, '-nodes', '-keyout', out.key, '-out', csr, '-subj', `/CN=${cn}`], dir);
    openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', String(Date.now() + Math.floor(Math.random() * 1e6)), '-out', out.cert, '-days', '2', '-extfile', extFile], dir);
    return out;
  };
  return {
    dir,
    ca,
    leaf: (file, names, keyType) => sign(file, names[0]!, `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\nextendedKeyUsage=serverAuth\n`, keyType),
    client: (file, cn) => sign(file, cn, 'extendedKeyUsage=clientAuth\n'),
    issue: (file, san, usage = 'serverAuth') => sign(file, file, `subjectAltName=${san}\nextendedKeyUsage=${usage}\nbasicConstraints=CA:FALSE\n`),
  };
}

/** PEM files read into Buffers, with their paths. */
export interface Pem {
  cert: Buffer;
  key: Buffer;
  certPath: string;
  keyPath: string;
}

export interface TestCa extends Pem {
  dir: string;
  /** A leaf signed by this CA; `san` like `DNS:one.one.one.one,IP:127.0.0.1`. */
  issue(name: string, san: string, usage?: 'serverAuth' | 'clientAuth'): Pem;
}

function read(files: CertFiles): Pem {
  return { cert: readFileSync(files.cert), key: readFileSync(files.key), certPath: files.cert, keyPath: files.key };
}

/** A CA whose certificates come back as Buffers too (for node:tls servers and clients). */
export function createTestCa(): TestCa {
  const pki = makePki(mkdtempSync(path.join(os.tmpdir(), 'sg-ca-')));
  return { ...read(pki.ca), dir: pki.dir, issue: (name, san, usage) => read(pki.issue(name, san, usage)) };
}
