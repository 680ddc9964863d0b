// Makes sure nginx, its Lua module, wrk, h2load (nghttp2-client) and openssl are installed (Debian
// packages), installing them with apt-get when missing, and says what it does.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

export const LUA_MODULE = '/usr/lib/nginx/modules/ngx_http_lua_module.so';

/** Absolute path of an executable found on PATH (plus the sbin folders), or undefined. */
export function which(cmd) {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = path.join(d, cmd);
    if (existsSync(p)) return p;
  }
  return undefined;
}

function missing(h2) {
  const out = [];
  if (!which('nginx')) out.push('nginx');
  if (!existsSync(LUA_MODULE)) out.push('libnginx-mod-http-lua');
  if (!which('wrk')) out.push('wrk');
  // only the HTTP/2 rows need them
  if (h2 && !which('h2load')) out.push('nghttp2-client');
  if (h2 && !which('openssl')) out.push('openssl');
  return out;
}

function aptInstall(log, pkgs) {
  const args = ['install', '-y', ...pkgs];
  log(`[bench] running: apt-get ${args.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', args, { stdio: 'inherit', env, timeout: 300_000 });
  if (r.status !== 0) {
    log('[bench] apt-get install failed; running: apt-get update, then retrying');
    spawnSync('apt-get', ['update'], { stdio: 'inherit', env, timeout: 300_000 });
    r = spawnSync('apt-get', args, { stdio: 'inherit', env, timeout: 300_000 });
  }
  return r.status === 0;
}

/** Returns {nginx, wrk, h2load, openssl} paths (the last two checked only with `h2`); throws when they cannot be had. */
export function ensureDeps(log = console.log, { h2 = true } = {}) {
  let miss = missing(h2);
  if (miss.length) {
    log(`[bench] missing: ${miss.join(', ')}`);
    if (typeof process.getuid === 'function' && process.getuid() !== 0) {
      throw new Error(`missing ${miss.join(', ')}; install them with: sudo apt-get install -y ${miss.join(' ')}`);
    }
    aptInstall(log, miss);
    miss = missing(h2);
    if (miss.length) throw new Error(`still missing after apt-get: ${miss.join(', ')}`);
  }
  const nginx = which('nginx');
  const wrk = which('wrk');
  const h2load = which('h2load');
  const openssl = which('openssl');
  const v = spawnSync(nginx, ['-v'], { encoding: 'utf8' });
  const hv = h2load ? spawnSync(h2load, ['--version'], { encoding: 'utf8' }) : null;
  const h2s = h2 ? `, ${h2load} (${(hv?.stdout || '').trim()}), ${openssl}` : '';
  log(`[bench] using ${nginx} (${(v.stderr || v.stdout).trim()}), ${wrk}${h2s}, lua module ${LUA_MODULE}`);
  return { nginx, wrk, h2load, openssl };
}
