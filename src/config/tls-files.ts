/**
 * The TLS files a config names, read when it loads (start, reload, check): a listener's or a
 * stream's certificates and keys and `client_ca`, an upstream's `ca`, `cert` and `key`. Each
 * problem comes back as [config path, message], which load.ts turns into `file:line: path: message`
 * with the others, so a missing CA file or a CA file without a certificate is reported where it is
 * named, with everything else, instead of surfacing as a bare ENOENT or as 502s at run time.
 */
import { readFileSync } from 'node:fs';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { Config } from './schema.ts';

type Problem = [Array<string | number>, string];
type Kind = 'certificate' | 'key';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** What is wrong with `file` as a `kind` file, or undefined. */
function fileProblem(file: string, kind: Kind): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
  if (kind === 'key') {
    try {
      createPrivateKey(text);
      return undefined;
    } catch (err) {
      return `${file} is not a PEM private key (${(err as Error).message})`;
    }
  }
  const pems = text.match(PEM_CERT);
  if (!pems) return `${file} holds no PEM certificate`;
  for (const pem of pems) {
    try {
      new X509Certificate(pem);
    } catch (err) {
      return `${file} holds a certificate that does not parse (${(err as Error).message})`;
    }
  }
  return undefined;
}

/** Problems of every TLS file `config` names; paths are absolute (load.ts resolves them first). */
export function tlsFileProblems(config: Config): Problem[] {
  const out: Problem[] = [];
  const check = (where: Array<string | number>, file: string | undefined, kind: Kind): boolean => {
    if (file === undefined || file === '') return false;
    const p = fileProblem(file, kind);
    if (p) out.push([where, p]);
    return !p;
  };
  /** A certificate and its key that both read must belong together (a mismatch is a TLS failure at the first handshake). */
  const pair = (where: Array<string | number>, cert: string, key: string) => {
    try {
      createSecureContext({ cert: readFileSync(cert), key: readFileSync(key) });
    } catch (err) {
      out.push([where, `${key} is not the key of ${cert} (${(err as Error).message})`]);
    }
  };
  const terminations: Array<[Array<string | number>, Config['listen'][number]['tls']]> = [
    ...config.listen.map((l, i): [Array<string | number>, Config['listen'][number]['tls']] => [['listen', i, 'tls'], l.tls]),
    ...config.streams.map((s, i): [Array<string | number>, Config['listen'][number]['tls']] => [['streams', i, 'tls'], s.tls as Config['listen'][number]['tls']]),
  ];
  for (const [where, tls] of terminations) {
    if (!tls) continue;
    tls.certificates.forEach((c, j) => {
      const both = [check([...where, 'certificates', j, 'cert'], c.cert, 'certificate'), check([...where, 'certificates', j, 'key'], c.key, 'key')];
      if (both.every(Boolean)) pair([...where, 'certificates', j, 'key'], c.cert, c.key);
    });
    check([...where, 'client_ca'], tls.client_ca, 'certificate');
    // A cipher list OpenSSL cannot use is the config's fault, reported where it is written (not as a certificate problem).
    if (tls.ciphers !== undefined) {
      try {
        createSecureContext({ ciphers: tls.ciphers });
      } catch (err) {
        out.push([[...where, 'ciphers'], `OpenSSL takes no cipher from ${JSON.stringify(tls.ciphers)} (${(err as Error).message})`]);
      }
    }
  }
  for (const [name, u] of Object.entries(config.upstreams)) {
    if (!u.tls) continue;
    check(['upstreams', name, 'tls', 'ca'], u.tls.ca, 'certificate');
    const both = [check(['upstreams', name, 'tls', 'cert'], u.tls.cert, 'certificate'), check(['upstreams', name, 'tls', 'key'], u.tls.key, 'key')];
    if (both.every(Boolean)) pair(['upstreams', name, 'tls', 'key'], u.tls.cert!, u.tls.key!);
  }
  return out;
}
