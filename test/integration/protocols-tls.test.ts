/**
 * TLS listeners: certificates picked by SNI (exact, wildcard, default), ALPN h2 and http/1.1 on
 * one port, client-certificate verification, and certificates swapped by hot reload while an open
 * HTTP/2 connection keeps working.
 */
import { copyFileSync, readFileSync } from 'node:fs';
import https from 'node:https';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { createReloader } from '../../src/control/reload.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { makePki, type Pki } from '../helpers/certs.ts';
import { h2Connect, h2Request } from '../helpers/h2-client.ts';
import { rawRequest, startOrigin, startProxy, statusOf } from '../helpers/servers.ts';

let pki: Pki;
let a: { cert: string; key: string };
let wild: { cert: string; key: string };
let clientCert: { cert: string; key: string };

beforeAll(() => {
  pki = makePki();
  a = pki.leaf('a', ['a.example.test']);
  wild = pki.leaf('wild', ['*.wild.example.test']);
  clientCert = pki.client('client', 'client-1');
});

function tlsConfig(origin: string, tlsExtra = '', http2 = true): string {
  return `listen:
  - address: 127.0.0.1:0
    http2: ${http2}
    tls:
      certificates:
        - { cert: ${a.cert}, key: ${a.key} }
        - { cert: ${wild.cert}, key: ${wild.key} }
${tlsExtra}log: { level: silent }
upstreams:
  up: { targets: ["${origin}"] }
routes:
  - upstream: up
`;
}

/** The certificate the server presents for `servername` (undefined: no SNI). */
function peerNames(port: number, servername?: string): Promise<{ subject: string; san: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca: readFileSync(pki.ca.cert), rejectUnauthorized: false }, () => {
      const cert = socket.getPeerX509Certificate()!;
      socket.end();
      resolve({ subject: cert.subject, san: cert.subjectAltName ?? '' });
    });
    socket.on('error', reject);
  });
}

function httpsGet(port: number, opts: https.RequestOptions = {}): Promise<{ status: number; text: string; alpn: string | false | null }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/x', servername: 'a.example.test', headers: { host: 'a.example.test' }, ca: readFileSync(pki.ca.cert), agent: false, ...opts }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, text: Buffer.concat(chunks).toString(), alpn: (res.socket as tls.TLSSocket).alpnProtocol }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('TLS listener', () => {
  it('SNI picks the exact certificate, a wildcard covers one label, unknown names and no SNI get the first', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(tlsConfig(origin.address));
    expect((await peerNames(port, 'a.example.test')).san).toBe('DNS:a.example.test');
    expect((await peerNames(port, 'x.wild.example.test')).san).toBe('DNS:*.wild.example.test');
    expect((await peerNames(port, 'A.Example.Test')).san).toBe('DNS:a.example.test');
    expect((await peerNames(port, 'deep.x.wild.example.test')).san).toBe('DNS:a.example.test');
    expect((await peerNames(port, 'other.test')).san).toBe('DNS:a.example.test');
    expect((await peerNames(port)).san).toBe('DNS:a.example.test');
  });

  it('an RSA and an ECDSA certificate for one name: each client gets the one it can verify, whichever is listed first (nginx)', async () => {
    const origin = await startOrigin();
    const rsa = pki.leaf('both-rsa', ['both.example.test'], 'rsa');
    const ec = pki.leaf('both-ec', ['both.example.test']);
    const keyTypeFor = (port: number, sigalgs: string) =>
      new Promise<string | undefined>((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port, servername: 'both.example.test', ca: readFileSync(pki.ca.cert), sigalgs }, () => {
          const type = socket.getPeerX509Certificate()!.publicKey.asymmetricKeyType;
          socket.end();
          resolve(type);
        });
        socket.on('error', reject);
      });
    for (const order of [[rsa, ec], [ec, rsa]]) {
      const yaml = tlsConfig(origin.address).replace(`        - { cert: ${a.cert}, key: ${a.key} }\n`, `        - { cert: ${a.cert}, key: ${a.key} }\n${order.map((c) => `        - { cert: ${c.cert}, key: ${c.key} }\n`).join('')}`);
      const { port } = await startProxy(yaml);
      expect(await keyTypeFor(port, 'ecdsa_secp256r1_sha256')).toBe('ec');
      expect(await keyTypeFor(port, 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256')).toBe('rsa');
    }
  });

  it('plain HTTP on the TLS port gets a plain 400 that says so (nginx), and a client cannot renegotiate', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(tlsConfig(origin.address, '', false));
    const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n', 3000);
    expect(statusOf(res.text)).toBe(400);
    expect(res.text).toContain('The plain HTTP request was sent to HTTPS port');
    // The server refuses: the client sees an error (on the callback or the socket), never success.
    const renegotiated = await new Promise<string>((resolve) => {
      const socket = tls.connect({ host: '127.0.0.1', port, servername: 'a.example.test', ca: readFileSync(pki.ca.cert), maxVersion: 'TLSv1.2' }, () => {
        socket.renegotiate({}, (err) => {
          socket.destroy();
          resolve(err ? err.message : 'renegotiated');
        });
      });
      socket.on('error', (err) => resolve(err.message));
    });
    expect(renegotiated).toMatch(/renegotiation/i);
  });

  it('ALPN h2: a node:http2 client gets proxied responses; an HTTP/1.1 client on the same port too', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(tlsConfig(origin.address));
    const session = await h2Connect(`https://127.0.0.1:${port}`, { servername: 'x.wild.example.test', ca: readFileSync(pki.ca.cert) });
    expect(session.alpnProtocol).toBe('h2');
    const res = await h2Request(session, { ':path': '/hello?q=1', ':authority': 'x.wild.example.test' });
    expect(res.status).toBe(200);
    expect(res.text).toBe('origin:o GET /hello?q=1');
    expect(origin.seen[0]!.headers.host).toBe('x.wild.example.test');
    expect(origin.seen[0]!.headers['x-forwarded-proto']).toBe('https');
    expect(Object.keys(origin.seen[0]!.headers).some((h) => h.startsWith(':'))).toBe(false);

    const h1 = await httpsGet(port, { ALPNProtocols: ['http/1.1'] } as https.RequestOptions);
    expect(h1).toEqual({ status: 200, text: 'origin:o GET /x', alpn: 'http/1.1' });
  });

  it('without http2 only http/1.1 is offered, and TLS below min_version is refused', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(tlsConfig(origin.address, '      min_version: TLSv1.3\n', false));
    const res = await httpsGet(port, { ALPNProtocols: ['h2', 'http/1.1'] } as https.RequestOptions);
    expect(res.status).toBe(200);
    expect(res.alpn).toBe('http/1.1');
    await expect(httpsGet(port, { maxVersion: 'TLSv1.2' })).rejects.toThrow();
  });

  it('verify_client on: no client certificate is refused, one signed by client_ca is accepted', async () => {
    const origin = await startOrigin();
    const other = makePki(undefined, 'other-ca').client('stranger', 'stranger');
    const { port } = await startProxy(tlsConfig(origin.address, `      client_ca: ${pki.ca.cert}\n      verify_client: on\n`));
    await expect(httpsGet(port)).rejects.toThrow();
    await expect(httpsGet(port, { cert: readFileSync(other.cert), key: readFileSync(other.key) })).rejects.toThrow();
    const ok = await httpsGet(port, { cert: readFileSync(clientCert.cert), key: readFileSync(clientCert.key) });
    expect(ok.status).toBe(200);
    expect(origin.seen).toHaveLength(1);
  });

  it('verify_client optional: clients with and without a certificate get in; an unverifiable one gets 400 (nginx)', async () => {
    const origin = await startOrigin();
    const { port } = await startProxy(tlsConfig(origin.address, `      client_ca: ${pki.ca.cert}\n      verify_client: optional\n`));
    expect((await httpsGet(port)).status).toBe(200);
    expect((await httpsGet(port, { cert: readFileSync(clientCert.cert), key: readFileSync(clientCert.key) })).status).toBe(200);
    const stranger = makePki(undefined, 'stranger-ca').client('stranger', 'stranger');
    const refused = await httpsGet(port, { cert: readFileSync(stranger.cert), key: readFileSync(stranger.key) });
    expect(refused.status).toBe(400);
    expect(refused.text).toBe('400 The SSL certificate error\n');
    expect(origin.seen).toHaveLength(2);
  });

  it('scripts see SNI, protocol and the verified client certificate (ctx.request.tls), over HTTP/1.1 and HTTP/2', async () => {
    const origin = await startOrigin();
    const yaml = tlsConfig(origin.address, `      client_ca: ${pki.ca.cert}\n      verify_client: optional\n`).replace('  - upstream: up\n', '  - upstream: up\n    access_by_script: tls.ts\n');
    const { port } = await startProxy(yaml, {
      'tls.ts': `export default function (ctx: any) { ctx.exit(200, { body: JSON.stringify({ tls: ctx.request.tls, conn: ctx.connection }) }); }`,
    });
    const alice = pki.client('alice', 'alice/O=Acme');
    const x = new X509Certificate(readFileSync(alice.cert));
    const creds = { cert: readFileSync(alice.cert), key: readFileSync(alice.key) };
    const seen = JSON.parse((await httpsGet(port, creds)).text);
    expect(seen.tls).toEqual({
      serverName: 'a.example.test',
      protocol: 'TLSv1.3',
      cipher: expect.stringMatching(/^TLS_/),
      clientCertificate: {
        // RFC 2253, most specific RDN first, as nginx's $ssl_client_s_dn
        subject: 'O=Acme,CN=alice',
        issuer: 'CN=scriptgate test ca',
        serial: x.serialNumber.toUpperCase(),
        fingerprint256: x.fingerprint256,
        notBefore: new Date(x.validFrom).toISOString(),
        notAfter: new Date(x.validTo).toISOString(),
        subjectAltName: '',
      },
    });
    expect(seen.conn).toMatchObject({ tls: true, serverName: 'a.example.test', clientCertificate: { subject: 'O=Acme,CN=alice' } });
    // Without a certificate: the TLS facts, no certificate.
    const anonymous = JSON.parse((await httpsGet(port)).text);
    expect(anonymous.tls).toMatchObject({ serverName: 'a.example.test', clientCertificate: null });
    // HTTP/2 on the same listener: the same facts, from the session's connection.
    const session = await h2Connect(`https://127.0.0.1:${port}`, { servername: 'a.example.test', ca: readFileSync(pki.ca.cert), ...creds });
    const h2 = JSON.parse((await h2Request(session, { ':path': '/x', ':authority': 'a.example.test' })).text);
    expect(h2.tls.clientCertificate.subject).toBe('O=Acme,CN=alice');
    expect(origin.seen).toHaveLength(0);
  });

  it('a resumed TLS 1.2 session: scripts still see its SNI; a session is not resumed under another name (RFC 6066 §3); an RSA-only name is served its RSA certificate', async () => {
    const origin = await startOrigin();
    const rsaOnly = pki.leaf('rsa-only', ['r.example.test'], 'rsa');
    const yaml = tlsConfig(origin.address)
      .replace(`        - { cert: ${wild.cert}, key: ${wild.key} }\n`, `        - { cert: ${wild.cert}, key: ${wild.key} }\n        - { cert: ${rsaOnly.cert}, key: ${rsaOnly.key} }\n`)
      .replace('  - upstream: up\n', '  - upstream: up\n    access_by_script: tls.ts\n');
    const { port } = await startProxy(yaml, { 'tls.ts': `export default function (ctx: any) { ctx.exit(200, { body: String(ctx.request.tls.serverName) }); }` });
    /** One HTTP/1.1 request over TLS 1.2 with `session`; resolves with the answer, whether it was resumed, and the next session. */
    const ask = (servername: string, session?: Buffer) =>
      new Promise<{ body: string; reused: boolean; session: Buffer | undefined; san: string }>((resolve, reject) => {
        let next: Buffer | undefined;
        const socket = tls.connect({ host: '127.0.0.1', port, servername, ca: readFileSync(pki.ca.cert), maxVersion: 'TLSv1.2', session, ALPNProtocols: ['http/1.1'] }, () => {
          socket.write(`GET / HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`);
        });
        let text = '';
        socket.on('session', (s: Buffer) => (next = s));
        socket.on('data', (d: Buffer) => (text += d));
        socket.on('end', () => resolve({ body: text.split('\r\n\r\n')[1] ?? '', reused: socket.isSessionReused(), session: next, san: socket.getPeerX509Certificate()?.subjectAltName ?? '' }));
        socket.on('error', reject);
      });
    const first = await ask('a.example.test');
    expect(first.body).toBe('a.example.test');
    const again = await ask('a.example.test', first.session);
    expect(again.reused).toBe(true);
    expect(again.body).toBe('a.example.test');
    // The a.example.test session offered for another name: a full handshake with that name's certificate.
    const other = await ask('x.wild.example.test', first.session);
    expect(other.reused).toBe(false);
    expect(other.san).toBe('DNS:*.wild.example.test');
    // The default certificate is ECDSA; a client that takes both key types still gets r's RSA one.
    const r = await ask('r.example.test');
    expect(r.san).toBe('DNS:r.example.test');
    expect(r.body).toBe('r.example.test');
  });

  it('hot reload swaps the certificate for new connections; an open h2 connection keeps working', async () => {
    const origin = await startOrigin();
    const { port, server, file } = await startProxy(tlsConfig(origin.address));
    const session = await h2Connect(`https://127.0.0.1:${port}`, { servername: 'a.example.test', ca: readFileSync(pki.ca.cert) });
    expect((await h2Request(session, { ':path': '/before', ':authority': 'a.example.test' })).status).toBe(200);
    const before = new X509Certificate(readFileSync(a.cert)).serialNumber;

    const renewed = pki.leaf('a-renewed', ['a.example.test']);
    copyFileSync(renewed.cert, a.cert);
    copyFileSync(renewed.key, a.key);
    const result = await createReloader(server, file, createLogger('silent'))();
    expect(result).toMatchObject({ ok: true, warnings: [] });

    const fresh = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'a.example.test', ca: readFileSync(pki.ca.cert) }, () => {
        resolve(s.getPeerX509Certificate()!.serialNumber);
        s.end();
      });
      s.on('error', reject);
    });
    expect(fresh).not.toBe(before);
    expect(fresh).toBe(new X509Certificate(readFileSync(renewed.cert)).serialNumber);
    // Without SNI the (renewed) default certificate too.
    const noSni = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
        resolve(s.getPeerX509Certificate()!.serialNumber);
        s.end();
      });
      s.on('error', reject);
    });
    expect(noSni).toBe(fresh);
    // The connection opened before the reload still serves requests.
    expect((await h2Request(session, { ':path': '/after', ':authority': 'a.example.test' })).text).toBe('origin:o GET /after');
  });

  it('a reload with a certificate that does not load fails and keeps the running certificates', async () => {
    const origin = await startOrigin();
    const { port, server, file } = await startProxy(tlsConfig(origin.address));
    const yaml = readFileSync(file, 'utf8').replace(a.key, wild.key); // key does not match the cert
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, yaml);
    const result = await createReloader(server, file, createLogger('silent'))();
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problems[0]).toContain(a.cert);
    expect((await httpsGet(port)).status).toBe(200);
  });
});
