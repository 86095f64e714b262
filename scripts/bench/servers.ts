// The servers under test, each on a free loopback port in front of one registry:
// distribution itself, nginx, Go's httputil.ReverseProxy (bench/goproxy) and regshim.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { nginxConf } from '../../test/support/nginx-conf.ts';
import { type Proc, progress, startProc, waitReady } from './procs.ts';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');

function has(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command} || test -x /usr/sbin/${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** wrk and golang-go from Debian, installed when missing (as root, or through sudo). */
export function ensureTools(): void {
  const missing = [['wrk', 'wrk'], ['go', 'golang-go'], ['nginx', 'nginx-light'], ['docker-registry', 'docker-registry']]
    .filter(([cmd]) => !has(cmd!))
    .map(([, pkg]) => pkg!);
  if (missing.length === 0) return;
  progress(`installing ${missing.join(' ')} with apt-get`);
  const sudo = process.getuid?.() === 0 ? [] : ['sudo'];
  const run = (args: string[]) => execFileSync(sudo[0] ?? args[0]!, sudo.length ? args : args.slice(1), {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  run(['apt-get', 'update', '-qq']);
  run(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...missing]);
}

/** Builds bench/<name> (goproxy, goload) into the temp dir with the go on PATH; returns the binary. */
export function buildGo(tmpDir: string, name: string): string {
  const out = path.join(tmpDir, name);
  // GOPROXY=off: standard library only, nothing is fetched.
  execFileSync('go', ['build', '-o', out, '.'], {
    cwd: path.join(ROOT, 'bench', name),
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, GOCACHE: path.join(os.tmpdir(), 'regshim-bench-gocache'), GOPROXY: 'off' },
  });
  return out;
}

export function startRegistry(tmpDir: string, port: number): { proc: Proc; dataDir: string; ready: Promise<void> } {
  const dataDir = path.join(tmpDir, 'registry');
  writeFileSync(path.join(tmpDir, 'config.yml'), [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog: {disabled: true}',
    'storage:',
    `  filesystem: {rootdirectory: ${JSON.stringify(dataDir)}}`,
    '  delete: {enabled: true}',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '',
  ].join('\n'));
  const proc = startProc('registry', 'docker-registry', ['serve', 'config.yml'], tmpDir);
  return { proc, dataDir, ready: waitReady(proc, `http://127.0.0.1:${port}/v2/`) };
}

/**
 * nginx as a fair anchor: one worker per core (Go uses every core too), request bodies
 * streamed (proxy_request_buffering off), responses relayed as they come
 * (proxy_buffering off) through 256 KiB buffers both ways instead of the 4/8 KiB defaults,
 * which doubles its download rate here; keep-alive to the registry; Host passed through,
 * as distribution's own nginx recipe does, so upload Locations point back at nginx.
 */
export const NGINX_SUMMARY = 'worker_processes auto, proxy_request_buffering off, proxy_buffering off, proxy_buffer_size 256k (proxy_buffers 4 256k), client_body_buffer_size 256k, upstream keepalive 64';

export function startNginx(tmpDir: string, port: number, upstreamPort: number): Proc {
  const dir = path.join(tmpDir, 'nginx');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'nginx.conf'), nginxConf(dir, { workers: 'auto', errorLevel: 'error', connections: 1024, http: `  upstream registry {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 0;
    client_body_buffer_size 256k;
    location / {
      proxy_pass http://registry;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_buffer_size 256k;
      proxy_buffers 4 256k;
      proxy_busy_buffers_size 256k;
    }
  }
` }));
  return startProc('nginx', 'nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'], tmpDir);
}

export function startGoProxy(tmpDir: string, binary: string, port: number, upstreamPort: number): Proc {
  return startProc('go', binary, ['-listen', `127.0.0.1:${port}`, '-upstream', `http://127.0.0.1:${upstreamPort}`], tmpDir);
}

/**
 * regshim started the way users start it: through the bin's shebang (memory tuning) with
 * the node on PATH (npm puts node@24 first), so the group's pids are the measured ones.
 */
export function startRegshim(name: string, tmpDir: string, port: number, upstreamPort: number, extraArgs: string[] = [], bin = path.join(ROOT, 'bin', 'regshim.js')): Proc {
  if (!existsSync(path.join(ROOT, 'dist', 'cli.js'))) throw new Error('dist/ is missing: npm run build first');
  // The shebang runs the first node on PATH: make it this Node 24, however the bench was started.
  const env = { ...process.env, PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}` };
  return startProc(name, bin, [
    '--upstream', `http://127.0.0.1:${upstreamPort}`,
    '--listen', `127.0.0.1:${port}`,
    '--log-level', 'warn',
    ...extraArgs,
  ], tmpDir, env);
}
