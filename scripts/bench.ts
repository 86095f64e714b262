// `npm run bench`: blob throughput and small-request rate of regshim against nginx and
// against the registry itself, all on loopback.
//
// It starts, in a temp dir and on free loopback ports, distribution (`docker-registry`),
// nginx in front of it (configured the way people front registries) and regshim in front
// of it; then, in rounds that interleave the three paths (direct, nginx, regshim, repeat)
// so machine noise spreads evenly, it uploads (POST + monolithic PUT ?digest=) and
// downloads (GET) a large blob and fires a burst of HEAD requests. It prints a Markdown
// table of medians and regshim's peak RSS, and stops everything it started, also on error
// or Ctrl-C.
//
// Env knobs: BENCH_SIZE_MIB (default 1024), BENCH_RUNS (default 3), BENCH_JSON (set: also
// write ./bench-results.json).
//
// Everything lives in this one file on purpose: tsconfig.test.json type-checks scripts/,
// and importing a local `.ts` helper would need `allowImportingTsExtensions` there.
import { type ChildProcess, spawn } from 'node:child_process';
import { type Hash, createHash, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

// ---------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------

const MiB = 1 << 20;
const SIZE_MIB = positiveInt('BENCH_SIZE_MIB', 1024);
const RUNS = positiveInt('BENCH_RUNS', 3);
const HEAD_REQUESTS = 2000;
const HEAD_CONCURRENCY = 16;
const REPO = 'bench/blobs';
const TARGET = { throughputRatio: 0.9, rssMiB: 150 };
const ROOT = path.resolve(import.meta.dirname, '..');

type PathName = 'direct' | 'nginx' | 'regshim';
const PATHS: readonly PathName[] = ['direct', 'nginx', 'regshim'];

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}

function progress(line: string): void {
  // Progress goes to stderr so that stdout carries only the Markdown table.
  process.stderr.write(`[bench] ${line}\n`);
}

// ---------------------------------------------------------------------------------------
// Processes: each in its own process group, stopped by process group, never by name
// ---------------------------------------------------------------------------------------

interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logFile: string;
  exited: boolean;
}

const procs: Proc[] = [];
let tmpDir: string | undefined;

function startProc(name: string, command: string, args: string[], cwd: string): Proc {
  const logFile = path.join(tmpDir!, `${name}.log`);
  const fd = openSync(logFile, 'a');
  // detached: the child calls setsid(), so it leads its own process group; stopping the
  // group also stops what it forks (nginx's worker), and a Ctrl-C in the terminal reaches
  // only this script, which then stops them in order.
  const child = spawn(command, args, { cwd, detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  const proc: Proc = { name, child, pid: child.pid, logFile, exited: false };
  child.once('exit', () => {
    proc.exited = true;
  });
  child.once('error', (err) => {
    proc.exited = true;
    progress(`${name}: ${err.message}`);
  });
  procs.push(proc);
  return proc;
}

function killGroup(proc: Proc, signal: NodeJS.Signals): void {
  try {
    process.kill(-proc.pid, signal);
  } catch {
    // ESRCH: the whole group is already gone.
  }
}

async function stopProc(proc: Proc): Promise<void> {
  killGroup(proc, 'SIGTERM');
  const deadline = Date.now() + 5000;
  while (!proc.exited && Date.now() < deadline) await sleep(50);
  killGroup(proc, 'SIGKILL'); // stragglers, e.g. a worker its master left behind
}

function logTail(proc: Proc): string {
  try {
    return readFileSync(proc.logFile, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '';
  }
}

let cleaned = false;
async function cleanup(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  for (const proc of [...procs].reverse()) await stopProc(proc);
  if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
}

// Last resort if the script exits without cleanup() having finished (an uncaught error in
// a callback, process.exit elsewhere): synchronous, so it still runs in 'exit'.
process.on('exit', () => {
  for (const proc of procs) killGroup(proc, 'SIGKILL');
  if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
});
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    interrupted = true;
    progress(`${signal}: stopping everything`);
    cleanup().finally(() => process.exit(128 + os.constants.signals[signal]));
  });
}

async function freePorts(n: number): Promise<number[]> {
  // Hold all n listeners open at once so the kernel can't hand out the same port twice.
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<net.Server>((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

async function waitReady(proc: Proc, url: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exited) throw new Error(`${proc.name} exited during start-up:\n${logTail(proc)}`);
    const status = await new Promise<number>((resolve) => {
      const req = http.get(url, { agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve(0));
      req.setTimeout(2000, () => req.destroy());
    });
    if (status === 200) return;
    if (Date.now() > deadline) throw new Error(`${proc.name} not ready at ${url} after 30 s:\n${logTail(proc)}`);
    await sleep(100);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function registryConfig(dataDir: string, port: number): string {
  return [
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
  ].join('\n');
}

// The usual registry front: request bodies streamed (proxy_request_buffering off), no size
// limit, keep-alive to the upstream, and every buffer left at its default (response
// buffering on, 4/8 KiB proxy buffers), which is what the ratio target is measured against.
// Host is passed through, as distribution's own nginx recipe does, so that the upload
// Locations the registry builds from it point back at nginx.
function nginxConfig(dir: string, port: number, upstreamPort: number): string {
  const p = (name: string) => JSON.stringify(path.join(dir, name));
  return `worker_processes 1;
pid ${p('nginx.pid')};
error_log ${p('error.log')} error;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${p('client_body')};
  proxy_temp_path ${p('proxy')};
  fastcgi_temp_path ${p('fastcgi')};
  uwsgi_temp_path ${p('uwsgi')};
  scgi_temp_path ${p('scgi')};
  upstream registry {
    server 127.0.0.1:${upstreamPort};
    keepalive 16;
  }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 0;
    location / {
      proxy_pass http://registry;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_request_buffering off;
    }
  }
}
`;
}

// ---------------------------------------------------------------------------------------
// Blobs: generated while sent, hashed while received, never held whole
// ---------------------------------------------------------------------------------------

// Every blob is SIZE_MIB - 1 copies of one random 1 MiB chunk followed by a last chunk
// that starts with a unique tag, so each run uploads a blob the registry has never seen
// (no dedup shortcut) while all of them share one prefix. The monolithic PUT needs the
// digest in its URL before the body goes out, so it is computed beforehand: the prefix is
// hashed once (streaming over the chunk) and each blob's digest is a copy of that hash
// state plus its own last chunk. Hashing during the timed upload would also take CPU from
// the proxies on a small machine.
const CHUNK = randomBytes(MiB);
const prefixHash: Hash = createHash('sha256');
for (let i = 0; i < SIZE_MIB - 1; i++) prefixHash.update(CHUNK);

interface Blob {
  readonly digest: string;
  readonly size: number;
  readonly lastChunk: Buffer;
  readonly chunks: number;
}

function makeBlob(tag: string): Blob {
  const lastChunk = Buffer.from(CHUNK);
  lastChunk.write(`regshim-bench ${tag} ${randomBytes(8).toString('hex')}`);
  const digest = `sha256:${prefixHash.copy().update(lastChunk).digest('hex')}`;
  return { digest, size: SIZE_MIB * MiB, lastChunk, chunks: SIZE_MIB };
}

/** A small blob that every path HEADs in the small-request test. */
function smallBlob(): Blob {
  const lastChunk = randomBytes(1024);
  return { digest: `sha256:${createHash('sha256').update(lastChunk).digest('hex')}`, size: lastChunk.length, lastChunk, chunks: 1 };
}

// ---------------------------------------------------------------------------------------
// Client: node:http with a keep-alive agent, a process of its own (this one)
// ---------------------------------------------------------------------------------------

const agent = new http.Agent({ keepAlive: true, maxSockets: HEAD_CONCURRENCY });

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** A request with a small or no body; the answer's body is collected (it is small). */
function smallRequest(method: string, url: string, headers: http.OutgoingHttpHeaders = {}, body?: Buffer): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    const req = http.request(url, { method, agent, headers: { 'content-length': body?.length ?? 0, ...headers } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function expectStatus(what: string, answer: Answer, status: number): void {
  if (answer.status !== status) throw new Error(`${what}: expected ${status}, got ${answer.status}: ${answer.text.slice(0, 500)}`);
}

/**
 * POST (start an upload) then one monolithic PUT ?digest= carrying the whole blob.
 * Returns the seconds the PUT took (request start to the registry's 201).
 */
async function upload(base: string, blob: Blob): Promise<number> {
  const started = await smallRequest('POST', `${base}/v2/${REPO}/blobs/uploads/`);
  expectStatus('POST upload', started, 202);
  // Follow the Location on the same path being measured: a proxy's rewritten Location and
  // nginx's Host-based one both point back at it, but only the path and query matter here.
  const location = new URL(started.headers.location ?? '', base);
  location.searchParams.set('digest', blob.digest);
  const putUrl = `${base}${location.pathname}${location.search}`;

  const t0 = performance.now();
  const answer = await new Promise<Answer>((resolve, reject) => {
    const req = http.request(putUrl, {
      method: 'PUT',
      agent,
      headers: { 'content-type': 'application/octet-stream', 'content-length': blob.size },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    // Write 1 MiB at a time and wait for 'drain' whenever the socket's buffer is full:
    // the body is generated as fast as the path under test takes it, and no faster.
    let sent = 0;
    const pump = (): void => {
      while (sent < blob.chunks) {
        const chunk = sent === blob.chunks - 1 ? blob.lastChunk : CHUNK;
        sent++;
        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
  const seconds = (performance.now() - t0) / 1000;
  expectStatus('PUT upload', answer, 201);
  if (answer.headers['docker-content-digest'] !== blob.digest) {
    throw new Error(`PUT upload: registry stored ${String(answer.headers['docker-content-digest'])}, expected ${blob.digest}`);
  }
  return seconds;
}

/** GET the blob, hashing it as it streams; fails unless size and digest match. Returns seconds. */
async function download(base: string, blob: Blob): Promise<number> {
  const t0 = performance.now();
  const { status, bytes, digest } = await new Promise<{ status: number; bytes: number; digest: string }>((resolve, reject) => {
    const req = http.get(`${base}/v2/${REPO}/blobs/${blob.digest}`, { agent }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (d: Buffer) => {
        bytes += d.length;
        hash.update(d);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, digest: `sha256:${hash.digest('hex')}` }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
  const seconds = (performance.now() - t0) / 1000;
  if (status !== 200) throw new Error(`GET blob: expected 200, got ${status}`);
  if (bytes !== blob.size || digest !== blob.digest) {
    throw new Error(`GET blob: got ${bytes} bytes with ${digest}, expected ${blob.size} bytes with ${blob.digest}`);
  }
  return seconds;
}

/** `total` HEAD requests, `concurrency` at a time over kept-alive connections. Returns req/s. */
async function headRate(base: string, blob: Blob, total: number, concurrency: number): Promise<number> {
  const url = `${base}/v2/${REPO}/blobs/${blob.digest}`;
  let issued = 0;
  const worker = async (): Promise<void> => {
    while (issued < total) {
      issued++;
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request(url, { method: 'HEAD', agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      });
      if (status !== 200) throw new Error(`HEAD blob via ${base}: ${status}`);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return total / ((performance.now() - t0) / 1000);
}

/**
 * Drop a blob once its run is measured: the API delete unlinks it from the repository,
 * and since nothing else references this blob, its data file goes too. That keeps the
 * temp dir at about one blob and leaves no gigabytes of dirty pages to write back in the
 * middle of a later run.
 */
async function dropBlob(base: string, dataDir: string, blob: Blob): Promise<void> {
  const answer = await smallRequest('DELETE', `${base}/v2/${REPO}/blobs/${blob.digest}`);
  expectStatus('DELETE blob', answer, 202);
  const hex = blob.digest.slice('sha256:'.length);
  rmSync(path.join(dataDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex), { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------
// Stats and output
// ---------------------------------------------------------------------------------------

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Peak resident set of a process, from the kernel's high-water mark. */
function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
  if (!kb) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(kb[1]) / 1024;
}

const mbps = (bytes: number, seconds: number) => bytes / 1e6 / seconds; // MB = 10^6 bytes
const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');

// ---------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------

async function main(): Promise<void> {
  if (Number(process.versions.node.split('.')[0]) < 24) throw new Error(`run with Node 24 (npm run bench), not ${process.version}`);
  if (!existsSync(path.join(ROOT, 'dist/cli.js'))) throw new Error('dist/ is missing: npm run build first');

  tmpDir = mkdtempSync(path.join(os.tmpdir(), 'regshim-bench-'));
  // nginx started as root runs its worker as nobody; the worker must be able to reach its
  // temp paths (it creates and chowns them itself) through this directory.
  chmodSync(tmpDir, 0o711);
  const dataDir = path.join(tmpDir, 'registry');
  const nginxDir = path.join(tmpDir, 'nginx');
  mkdirSync(nginxDir);
  const [regPort, nginxPort, shimPort] = (await freePorts(3)) as [number, number, number];
  const bases: Record<PathName, string> = {
    direct: `http://127.0.0.1:${regPort}`,
    nginx: `http://127.0.0.1:${nginxPort}`,
    regshim: `http://127.0.0.1:${shimPort}`,
  };

  writeFileSync(path.join(tmpDir, 'config.yml'), registryConfig(dataDir, regPort));
  const registry = startProc('registry', 'docker-registry', ['serve', 'config.yml'], tmpDir);
  await waitReady(registry, `${bases.direct}/v2/`);

  writeFileSync(path.join(nginxDir, 'nginx.conf'), nginxConfig(nginxDir, nginxPort, regPort));
  const nginx = startProc('nginx', 'nginx', ['-p', nginxDir, '-c', path.join(nginxDir, 'nginx.conf'), '-g', 'daemon off;'], tmpDir);
  await waitReady(nginx, `${bases.nginx}/v2/`);

  // Started the way users start it: through the bin's shebang, which sets the memory tuning
  // (README, Performance) and execs the node on PATH (npm puts node@24 first), so the pid
  // is the one whose memory is measured.
  const regshim = startProc('regshim', path.join(ROOT, 'bin/regshim.js'), [
    '--upstream', bases.direct,
    '--listen', `127.0.0.1:${shimPort}`,
    '--log-level', 'warn',
  ], tmpDir);
  await waitReady(regshim, `${bases.regshim}/healthz`);
  progress(`registry :${regPort}, nginx :${nginxPort}, regshim :${shimPort} (pid ${regshim.pid}); temp dir ${tmpDir}`);

  // Warm-up, not measured: connections, JIT, and the first-use paths of every process.
  const small = smallBlob();
  {
    const put = await smallRequest('POST', `${bases.direct}/v2/${REPO}/blobs/uploads/`);
    expectStatus('POST upload', put, 202);
    const loc = new URL(put.headers.location ?? '', bases.direct);
    loc.searchParams.set('digest', small.digest);
    expectStatus('PUT small blob', await smallRequest('PUT', `${bases.direct}${loc.pathname}${loc.search}`, { 'content-type': 'application/octet-stream' }, small.lastChunk), 201);
  }
  for (const p of PATHS) {
    await headRate(bases[p], small, 200, HEAD_CONCURRENCY);
    const warm = makeBlob(`warm-${p}`);
    await upload(bases[p], warm);
    await download(bases[p], warm);
    await dropBlob(bases.direct, dataDir, warm);
  }

  const results: Record<PathName, { upload: number[]; download: number[]; head: number[] }> = {
    direct: { upload: [], download: [], head: [] },
    nginx: { upload: [], download: [], head: [] },
    regshim: { upload: [], download: [], head: [] },
  };
  for (let run = 1; run <= RUNS; run++) {
    for (const p of PATHS) {
      const blob = makeBlob(`run-${run}-${p}`);
      const up = mbps(blob.size, await upload(bases[p], blob));
      const down = mbps(blob.size, await download(bases[p], blob));
      await dropBlob(bases.direct, dataDir, blob);
      const head = await headRate(bases[p], small, HEAD_REQUESTS, HEAD_CONCURRENCY);
      results[p].upload.push(up);
      results[p].download.push(down);
      results[p].head.push(head);
      progress(`run ${run}/${RUNS} ${p.padEnd(7)} PUT ${fmt(up).padStart(5)} MB/s  GET ${fmt(down).padStart(5)} MB/s  HEAD ${fmt(head).padStart(5)} req/s`);
    }
  }
  const rssMiB = peakRssMiB(regshim.pid);
  agent.destroy();
  await cleanup();

  // ---- report ----
  const med = Object.fromEntries(PATHS.map((p) => [p, {
    upload: median(results[p].upload),
    download: median(results[p].download),
    head: median(results[p].head),
  }])) as Record<PathName, { upload: number; download: number; head: number }>;
  const ratio = (p: PathName, k: 'upload' | 'download' | 'head') => med[p][k] / med.nginx[k];

  const lines = [
    `## regshim throughput: ${fmt(SIZE_MIB)} MiB blob, median of ${RUNS} interleaved run${RUNS === 1 ? '' : 's'}`,
    '',
    `| path | upload MB/s | vs nginx | download MB/s | vs nginx | HEAD req/s (c=${HEAD_CONCURRENCY}) | vs nginx |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...PATHS.map((p) => `| ${p} | ${fmt(med[p].upload)} | ${fmt(ratio(p, 'upload'), 2)}x | ${fmt(med[p].download)} | ${fmt(ratio(p, 'download'), 2)}x | ${fmt(med[p].head)} | ${fmt(ratio(p, 'head'), 2)}x |`),
    '',
    '| regshim target | wanted | measured | |',
    '| --- | --- | ---: | --- |',
    `| upload vs nginx | >= ${TARGET.throughputRatio}x | ${fmt(ratio('regshim', 'upload'), 2)}x | ${verdict(ratio('regshim', 'upload') >= TARGET.throughputRatio)} |`,
    `| download vs nginx | >= ${TARGET.throughputRatio}x | ${fmt(ratio('regshim', 'download'), 2)}x | ${verdict(ratio('regshim', 'download') >= TARGET.throughputRatio)} |`,
    `| peak RSS (VmHWM) | < ${TARGET.rssMiB} MiB | ${fmt(rssMiB, 1)} MiB | ${verdict(rssMiB < TARGET.rssMiB)} |`,
    '',
    `MB = 10^6 bytes. Upload: POST + one monolithic PUT ?digest= (timed: the PUT). Download: GET, sha256-verified while streaming. ` +
      `Node ${process.version}, ${os.cpus().length} CPUs, nginx worker_processes 1 with default proxy buffers.`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);

  if (process.env.BENCH_JSON) {
    const json = {
      date: new Date().toISOString(),
      node: process.version,
      cpus: os.cpus().length,
      sizeMiB: SIZE_MIB,
      runs: RUNS,
      head: { requests: HEAD_REQUESTS, concurrency: HEAD_CONCURRENCY },
      units: { upload: 'MB/s', download: 'MB/s', head: 'req/s' },
      perRun: results,
      median: med,
      vsNginx: Object.fromEntries(PATHS.map((p) => [p, { upload: ratio(p, 'upload'), download: ratio(p, 'download'), head: ratio(p, 'head') }])),
      regshimPeakRssMiB: rssMiB,
      targets: {
        uploadVsNginx: { wanted: TARGET.throughputRatio, met: ratio('regshim', 'upload') >= TARGET.throughputRatio },
        downloadVsNginx: { wanted: TARGET.throughputRatio, met: ratio('regshim', 'download') >= TARGET.throughputRatio },
        peakRssMiB: { wanted: TARGET.rssMiB, met: rssMiB < TARGET.rssMiB },
      },
    };
    writeFileSync(path.resolve('bench-results.json'), `${JSON.stringify(json, null, 2)}\n`);
    progress(`wrote ${path.resolve('bench-results.json')}`);
  }
}

try {
  await main();
} catch (err) {
  // After Ctrl-C the requests in flight fail as their servers stop: not worth reporting.
  if (interrupted) await new Promise(() => {}); // the signal handler exits once cleanup is done
  process.stderr.write(`[bench] failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  for (const proc of procs) {
    if (proc.exited) process.stderr.write(`[bench] ${proc.name} had exited; its log:\n${logTail(proc)}\n`);
  }
  await cleanup();
  process.exitCode = 1;
}
