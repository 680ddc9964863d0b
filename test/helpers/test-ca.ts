/**
 * A throwaway certificate authority for TLS tests, made with the `openssl` CLI in a temp folder:
 * a CA, server leaves with the SANs asked for, and client certificates for mTLS. Files are PEM;
 * `paths` are there for configs, the Buffers for node:tls servers. ~50 ms per certificate.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

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

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

function pem(dir: string, name: string): Pem {
  const certPath = path.join(dir, `${name}.pem`);
  const keyPath = path.join(dir, `${name}.key`);
  return { cert: readFileSync(certPath), key: readFileSync(keyPath), certPath, keyPath };
}

/** Creates a CA named `cn` (EC P-256 keys, valid one day). */
export function createTestCa(cn = 'scriptgate test CA'): TestCa {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sg-ca-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', `/CN=${cn}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const ca = pem(dir, 'ca');
  return {
    ...ca,
    dir,
    issue(name, san, usage = 'serverAuth') {
      openssl(dir, ['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
      writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=${usage}\nbasicConstraints=CA:FALSE\n`);
      openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`]);
      return pem(dir, name);
    },
  };
}
