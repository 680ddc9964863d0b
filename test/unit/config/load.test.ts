import path from 'node:path';
import { writeFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, locate, parseConfig } from '../../../src/config/load.ts';
import { tlsFileProblems } from '../../../src/config/tls-files.ts';
import { createTestCa } from '../../helpers/certs.ts';
import { parseDuration, parseHostPort, parseSize } from '../../../src/config/units.ts';

function problems(text: string, file = 'sg.yaml'): string[] {
  try {
    parseConfig(text, file);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected the config to be refused');
}

const GOOD = `listen:
  - address: 127.0.0.1:6188
upstreams:
  api:
    targets: ["127.0.0.1:9001", { address: "127.0.0.1:9002", weight: 2 }]
    timeouts: { connect: 250ms, read: 2s }
routes:
  - name: api
    match: { path_prefix: /v1/ }
    upstream: api
`;

describe('units', () => {
  it('parses durations: ms, s, m, h and plain numbers', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('2s')).toBe(2000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('1m')).toBe(60_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('300')).toBe(300);
    expect(parseDuration(42)).toBe(42);
  });

  it('refuses malformed durations', () => {
    for (const bad of ['2 seconds', 'fast', '-1s', '1d', '', '1sm']) expect(parseDuration(bad), bad).toBeUndefined();
    expect(parseDuration(-5)).toBeUndefined();
    expect(parseDuration(Number.NaN)).toBeUndefined();
  });

  it('parses sizes 1024-based, case-insensitively', () => {
    expect(parseSize('512')).toBe(512);
    expect(parseSize('16kb')).toBe(16 * 1024);
    expect(parseSize('16KB')).toBe(16 * 1024);
    expect(parseSize('1k')).toBe(1024);
    expect(parseSize('1mb')).toBe(1 << 20);
    expect(parseSize('2g')).toBe(2 * 2 ** 30);
    expect(parseSize(0)).toBe(0);
  });

  it('refuses malformed sizes', () => {
    for (const bad of ['lots', '1tb', '-1kb', '']) expect(parseSize(bad), bad).toBeUndefined();
    expect(parseSize(1.5)).toBeUndefined();
  });

  it('parses host:port and [v6]:port', () => {
    expect(parseHostPort('127.0.0.1:80')).toEqual({ host: '127.0.0.1', port: 80 });
    expect(parseHostPort('[::1]:6188')).toEqual({ host: '::1', port: 6188 });
    expect(parseHostPort('localhost:0')).toEqual({ host: 'localhost', port: 0 });
    expect(parseHostPort('127.0.0.1')).toBeUndefined();
    expect(parseHostPort('127.0.0.1:70000')).toBeUndefined();
    expect(parseHostPort('::1:80')).toBeUndefined();
  });
});

describe('loading a config', () => {
  it('a good YAML config loads with defaults filled in and units parsed', () => {
    const { config } = parseConfig(GOOD, '/etc/sg/sg.yaml');
    expect(config.workers).toBe(1);
    expect(config.limits.client_header_timeout).toBe(10_000);
    expect(config.limits.max_header_size).toBe(16 * 1024);
    expect(config.limits.max_body_size).toBe(0);
    expect(config.upstreams.api!.timeouts).toEqual({ connect: 250, read: 2000, idle: 60_000 });
    expect(config.upstreams.api!.targets).toEqual([
      { address: '127.0.0.1:9001', weight: 1 },
      { address: '127.0.0.1:9002', weight: 2 },
    ]);
    expect(config.upstreams.api!.retries).toBe(1);
    expect(config.upstreams.api!.balance).toBe('round_robin');
    expect(config.routes[0]!.tenant).toBe('default');
    expect(config.tenants.default!.scripts).toBe('/etc/sg');
  });

  it('via: default names the proxy scriptgate; a name replaces it; false turns it off; a non-token is refused', () => {
    const base = 'listen: [{ address: 127.0.0.1:0 }]\nroutes: [{}]\n';
    expect(parseConfig(base, 'v.yaml').config.via).toBe('scriptgate');
    expect(parseConfig(`${base}via: edge-1\n`, 'v.yaml').config.via).toBe('edge-1');
    expect(parseConfig(`${base}via: false\n`, 'v.yaml').config.via).toBeUndefined();
    expect(problems(`${base}via: "two words"\n`, 'v.yaml')).toEqual(['v.yaml:3: via: via: a name made of token characters, e.g. edge-1']);
  });

  it('refuses what would break every request: a duration past what a timer holds, timeouts.idle 0, a header or URI cap of 0', () => {
    const base = 'listen: [{ address: 127.0.0.1:0 }]\nupstreams: { up: { targets: ["127.0.0.1:9001"], timeouts: { read: 600h } } }\nroutes: [{ upstream: up }]\n';
    expect(problems(base, 'd.yaml')).toEqual([expect.stringMatching(/^d\.yaml:2: upstreams\.up\.timeouts\.read: duration "600h" is longer than 24 days/)]);
    expect(problems(base.replace('read: 600h', 'idle: 0'), 'd.yaml')).toEqual(['d.yaml:2: upstreams.up.timeouts.idle: timeouts.idle must be at least 1 ms']);
    expect(problems(base.replace('read: 600h', 'read: 0') + 'limits: { max_header_size: 0, max_uri_size: 0 }\n', 'd.yaml')).toEqual([
      'd.yaml:4: limits.max_header_size: max_header_size must be at least 1 byte (0 is not "unlimited" here)',
      'd.yaml:4: limits.max_uri_size: max_uri_size must be at least 1 byte (0 is not "unlimited" here)',
    ]);
    // 0 keeps its meaning where it has one: no read timeout, no body cap.
    expect(parseConfig(base.replace('read: 600h', 'read: 0') + 'limits: { max_body_size: 0 }\n', 'd.yaml').config.upstreams.up!.timeouts.read).toBe(0);
  });

  it('a YAML alias to no anchor, or an alias bomb, is a file:line problem, not a crash', () => {
    const undefinedAlias = 'listen:\n  - address: 127.0.0.1:6188\nupstreams:\n  app:\n    targets: ["127.0.0.1:9001"]\n    timeouts: *nope\nroutes:\n  - upstream: app\n';
    expect(problems(undefinedAlias, 'a.yaml')).toEqual(['a.yaml:6: Unresolved alias (the anchor must be set before the alias): nope']);
    const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]', ...'bcdef'.split('').map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcde'[i]}`).join(',')}]`)].join('\n') + '\n';
    expect(problems(bomb, 'b.yaml')).toEqual([expect.stringMatching(/^b\.yaml:1: Excessive alias count/)]);
  });

  it('a JSON config loads the same as YAML', () => {
    const json = JSON.stringify({
      listen: [{ address: '127.0.0.1:6188' }],
      limits: { max_body_size: '1mb', client_header_timeout: '500ms' },
      upstreams: { api: { targets: ['127.0.0.1:9001'] } },
      routes: [{ upstream: 'api' }],
    }, null, 2);
    const { config } = parseConfig(json, 'sg.json');
    expect(config.limits.max_body_size).toBe(1 << 20);
    expect(config.limits.client_header_timeout).toBe(500);
    expect(config.routes[0]!.match.path_prefix).toBe('/');
  });

  it('a JSON config error names its line too', () => {
    const json = '{\n  "listen": [{ "address": "127.0.0.1:6188" }],\n  "upstreams": { "api": { "targets": ["127.0.0.1:9001"] } },\n  "routes": [\n    { "upstream": "nope" }\n  ]\n}\n';
    expect(problems(json, 'sg.json')).toEqual(['sg.json:5: routes[0].upstream: unknown upstream "nope"']);
  });

  it('an unknown upstream is reported as file:line: path: message', () => {
    const text = GOOD.replace('upstream: api', 'upstream: api2');
    expect(problems(text)).toEqual(['sg.yaml:10: routes[0].upstream: unknown upstream "api2"']);
  });

  it('TLS files are checked by name and line (tls-files.ts, locate): a missing CA, a CA file with no certificate and a key that is not one are file:line problems, all at once', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sg-tls-files-'));
    writeFileSync(path.join(dir, 'empty-ca.pem'), 'not a certificate\n');
    writeFileSync(path.join(dir, 'bad.key'), '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n');
    const yaml = `listen: [{ address: "127.0.0.1:6188" }]
upstreams:
  api:
    targets: ["127.0.0.1:9001"]
  tls_up:
    targets: ["127.0.0.1:9443"]
    tls: { ca: missing-ca.pem }
  tls_two:
    targets: ["127.0.0.1:9444"]
    tls:
      ca: empty-ca.pem
      cert: empty-ca.pem
      key: bad.key
routes:
  - upstream: api
`;
    const file = path.join(dir, 'sg.yaml');
    const found = locate(parseConfig(yaml, file), tlsFileProblems(parseConfig(yaml, file).config)).map((p) => p.replace(dir + path.sep, ''));
    expect(found, found.join("\n")).toHaveLength(4);
    expect(found[0]).toMatch(/^sg\.yaml:7: upstreams\.tls_up\.tls\.ca: cannot read .*missing-ca\.pem: ENOENT$/);
    expect(found[1]).toMatch(/^sg\.yaml:11: upstreams\.tls_two\.tls\.ca: .*empty-ca\.pem holds no PEM certificate$/);
    expect(found[2]).toMatch(/^sg\.yaml:12: upstreams\.tls_two\.tls\.cert: .*empty-ca\.pem holds no PEM certificate$/);
    expect(found[3]).toMatch(/^sg\.yaml:13: upstreams\.tls_two\.tls\.key: .*bad\.key is not a PEM private key/);
  });

  it('a cipher list OpenSSL cannot use is a problem at its own line, not blamed on the certificate', () => {
    const ca = createTestCa();
    const a = ca.issue('a', 'DNS:a.test');
    const yaml = `listen:
  - address: 127.0.0.1:6188
    tls:
      certificates: [{ cert: "${a.certPath}", key: "${a.keyPath}" }]
      ciphers: "NO-SUCH-CIPHER"
upstreams:
  api: { targets: ["127.0.0.1:9001"] }
routes:
  - upstream: api
`;
    const loaded = parseConfig(yaml, 'sg.yaml');
    expect(locate(loaded, tlsFileProblems(loaded.config))).toEqual([expect.stringMatching(/^sg\.yaml:5: listen\[0\]\.tls\.ciphers: OpenSSL takes no cipher from "NO-SUCH-CIPHER"/)]);
  });

  it('a certificate and a key that do not belong together are a problem at the key, for listeners and upstream mTLS alike', () => {
    const ca = createTestCa();
    const a = ca.issue('a', 'DNS:a.test');
    const b = ca.issue('b', 'DNS:b.test');
    const yaml = `listen:
  - address: 127.0.0.1:6188
    tls: { certificates: [{ cert: "${a.certPath}", key: "${b.keyPath}" }] }
upstreams:
  api:
    targets: ["127.0.0.1:9001"]
    tls: { cert: "${a.certPath}", key: "${a.keyPath}" }
  bad:
    targets: ["127.0.0.1:9002"]
    tls: { cert: "${b.certPath}", key: "${a.keyPath}" }
routes:
  - upstream: api
`;
    const loaded = parseConfig(yaml, 'sg.yaml');
    const found = locate(loaded, tlsFileProblems(loaded.config));
    expect(found).toHaveLength(2);
    expect(found[0]).toMatch(/^sg\.yaml:3: listen\[0\]\.tls\.certificates\[0\]\.key: .* is not the key of /);
    expect(found[1]).toMatch(/^sg\.yaml:10: upstreams\.bad\.tls\.key: .* is not the key of /);
  });

  it('an empty admin token is refused (it would turn authentication off)', () => {
    expect(problems(GOOD.replace('upstreams:', 'admin: { address: "127.0.0.1:9180", token: "" }\nupstreams:'))).toEqual([
      'sg.yaml:3: admin.token: an empty admin token would turn authentication off: give a token, or remove the key',
    ]);
  });

  it('a target without a port, a target on port 0, a route host with a port and an upstream_host that is not a Host are refused by name', () => {
    const text = GOOD.replace('targets: ["127.0.0.1:9001", ', 'targets: ["127.0.0.1:0", "nohost", ').replace('match: { path_prefix: /v1/ }', 'match: { path_prefix: /v1/, host: "p.test:8080" }\n    upstream_host: "a b"');
    expect(problems(text)).toEqual([
      'sg.yaml:5: upstreams.api.targets[0].address: a target needs a port from 1 to 65535',
      'sg.yaml:5: upstreams.api.targets[1].address: expected host:port, e.g. 127.0.0.1:6188',
      'sg.yaml:9: routes[0].match.host: routes match the host name only, whatever the port (as nginx server_name): drop the port, or give each port its own listener',
      'sg.yaml:10: routes[0].upstream_host: expected a Host value: a host name or IP address, with an optional :port',
    ]);
  });

  it('tenant env: strings as written, { from_env } from the environment; an unset variable or a bad name is file:line', () => {
    process.env.SG_TEST_SECRET = 's3cr3t';
    try {
      const text = `${GOOD}tenants:\n  acme:\n    env:\n      REGION: eu-1\n      SECRET: { from_env: SG_TEST_SECRET }\n`;
      expect(parseConfig(text, 'sg.yaml').config.tenants.acme!.env).toEqual({ REGION: 'eu-1', SECRET: 's3cr3t' });
      expect(parseConfig(GOOD, 'sg.yaml').config.tenants.default!.env).toEqual({});
      expect(problems(text.replace('SG_TEST_SECRET', 'SG_TEST_UNSET'))).toEqual(['sg.yaml:15: tenants.acme.env.SECRET: environment variable SG_TEST_UNSET is not set']);
      expect(problems(text.replace('REGION:', '2REGION:'))[0]).toMatch(/^sg\.yaml:1[34]: tenants\.acme\.env.*letters, digits and _/);
    } finally {
      delete process.env.SG_TEST_SECRET;
    }
  });

  it('an unknown key is reported on its own line', () => {
    const text = GOOD.replace('    timeouts:', '    timeout: 5s\n    timeouts:');
    const p = problems(text);
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/^sg\.yaml:6: upstreams\.api: .*timeout/);
  });

  it('a bad duration names the field and the accepted forms', () => {
    const text = GOOD.replace('read: 2s', 'read: 2 seconds');
    const p = problems(text);
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/^sg\.yaml:6: upstreams\.api\.timeouts\.read: invalid duration "2 seconds"/);
  });

  it('a YAML syntax error gives file:line', () => {
    const p = problems('listen:\n  - address: 127.0.0.1:6188\nroutes: [\n  { upstream: a\n');
    expect(p.length).toBeGreaterThanOrEqual(1);
    expect(p[0]).toMatch(/^sg\.yaml:\d+: /);
  });

  it('a duplicate key is a YAML error with its line', () => {
    const p = problems('listen:\n  - address: 127.0.0.1:6188\nworkers: 1\nworkers: 2\nroutes: [{}]\n');
    expect(p[0]).toMatch(/^sg\.yaml:4: /);
  });

  it('every problem is reported at once, in line order', () => {
    const text = `workers: many
listen:
  - address: nowhere
limits:
  max_header_size: huge
upstreams:
  api:
    targets: []
routes:
  - upstream: ghost
    tenant: nobody
    match: { path_prefix: v1, methods: [get] }
`;
    const p = problems(text);
    expect(p.length).toBeGreaterThanOrEqual(7);
    for (const line of p) expect(line).toMatch(/^sg\.yaml:\d+: \S/);
    const lines = p.map((l) => Number(/^sg\.yaml:(\d+):/.exec(l)![1]));
    expect(lines).toEqual([...lines].sort((a, b) => a - b));
    const text2 = p.join('\n');
    expect(text2).toContain('sg.yaml:1: workers:');
    expect(text2).toContain('sg.yaml:3: listen[0].address: expected host:port');
    expect(text2).toContain('sg.yaml:5: limits.max_header_size: invalid size "huge"');
    expect(text2).toContain('sg.yaml:8: upstreams.api.targets: an upstream needs at least one target');
    expect(text2).toContain('sg.yaml:10: routes[0].upstream: unknown upstream "ghost"');
    expect(text2).toContain('sg.yaml:11: routes[0].tenant: unknown tenant "nobody"');
    expect(text2).toContain('sg.yaml:12: routes[0].match.path_prefix: path_prefix must start with /');
  });

  it('a missing file is a ConfigError that names it', async () => {
    await expect(loadConfig('/nonexistent/sg.yaml')).rejects.toThrow(/\/nonexistent\/sg\.yaml:0: cannot read config/);
  });

  it('relative paths resolve against the config file folder', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sg-unit-'));
    const file = path.join(dir, 'sg.yaml');
    writeFileSync(file, GOOD + 'tenants:\n  acme: { scripts: tenants/acme }\n');
    const { config, baseDir } = await loadConfig(file);
    expect(baseDir).toBe(dir);
    expect(config.tenants.acme!.scripts).toBe(path.join(dir, 'tenants/acme'));
  });
});

describe('settings that would fail only later are refused by check', () => {
  it('an admin address a listener already uses, and a health check or DNS period of 0 (a busy loop), are file:line problems', () => {
    const p = problems(`listen:
  - address: 127.0.0.1:6188
admin: { address: 127.0.0.1:6188 }
upstreams:
  api:
    targets: ["127.0.0.1:9001"]
    health_check: { interval: 0, timeout: 0 }
routes:
  - upstream: api
`);
    expect(p).toContain('sg.yaml:3: admin.address: address 127.0.0.1:6188 is already used by a listener');
    expect(p.some((l) => /^sg\.yaml:7: upstreams\.api\.health_check\.interval: health_check\.interval must be at least 10 ms/.test(l))).toBe(true);
    expect(p.some((l) => /^sg\.yaml:7: upstreams\.api\.health_check\.timeout: health_check\.timeout must be at least 1 ms/.test(l))).toBe(true);
  });
});
