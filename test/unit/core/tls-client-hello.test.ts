/** readClientHello on a real ClientHello from node's TLS client, cut short, and on bytes that are not one. */
import net from 'node:net';
import tls from 'node:tls';
import { describe, expect, it, onTestFinished } from 'vitest';
import { readClientHello } from '../../../src/core/tls-client-hello.ts';

/** The first bytes a TLS client sends (its ClientHello), captured by a plain TCP server. */
async function captureHello(opts: tls.ConnectionOptions): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onTestFinished(() => void server.close());
  const got = new Promise<Buffer>((resolve) => server.once('connection', (s) => s.once('data', (d: Buffer) => (resolve(d), s.destroy()))));
  const client = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, rejectUnauthorized: false, ...opts });
  client.on('error', () => undefined);
  return got;
}

describe('readClientHello', () => {
  it('reads the SNI name and the key types of the signature algorithms, in the client\'s order', async () => {
    const hello = await captureHello({ servername: 'Both.Example.Test', sigalgs: 'rsa_pss_rsae_sha256:ecdsa_secp256r1_sha256:ed25519' });
    expect(readClientHello(hello)).toEqual({ serverName: 'both.example.test', keyTypes: ['rsa', 'ec', 'ed25519'] });
    const noSni = await captureHello({ sigalgs: 'ecdsa_secp256r1_sha256' });
    expect(readClientHello(noSni)).toEqual({ serverName: undefined, keyTypes: ['ec'] });
  });

  it("asks for more while the first record is incomplete; gives nothing for what is not a ClientHello", async () => {
    const hello = await captureHello({ servername: 'a.example.test' });
    expect(readClientHello(hello.subarray(0, 3))).toBe('more');
    expect(readClientHello(hello.subarray(0, hello.length - 1))).toBe('more');
    expect(readClientHello(Buffer.from('GET / HTTP/1.1\r\n'))).toBeUndefined();
    // A record header announcing more than 16 KiB, and a handshake that is not a ClientHello.
    expect(readClientHello(Buffer.from([0x16, 3, 1, 0x50, 0x00]))).toBeUndefined();
    const notHello = Buffer.from(hello);
    notHello[5] = 2;
    expect(readClientHello(notHello)).toBeUndefined();
    // Lengths that point past the record do not throw.
    const broken = Buffer.from(hello);
    broken.writeUInt16BE(0xffff, 5 + 4 + 2 + 32 + 1 + broken[5 + 4 + 2 + 32]!);
    expect(() => readClientHello(broken)).not.toThrow();
  });
});
