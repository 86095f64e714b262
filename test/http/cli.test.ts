// The built CLI, run the way users run it (`npm run build` comes first in `npm test`).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { toImageManifest } from '../../src/cache/convert.js';
import { classifyManifest } from '../../src/cache/detect.js';
import { DEFAULT_INDEX_LAYER_MEDIA_TYPE } from '../../src/registry/media-types.js';
import { putManifest } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { fixturesDir } from '../support/oci-archive.js';
import http from 'node:http';
import { startCountingProxy } from '../support/counting-proxy.js';
import { freePort, runCommand, startProcess, waitFor } from '../support/processes.js';
import { startRegistry } from '../support/registry.js';
import { startShimProcess } from '../support/regshim.js';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'regshim.js');
const regshim = (args: string[], env: Record<string, string> = {}) =>
  runCommand(process.execPath, [bin, ...args], { env: { ...process.env, REGSHIM_UPSTREAM: '', ...env }, timeoutMs: 30_000 });

const cleanup = new Cleanup();
afterAll(() => cleanup.run());

describe('regshim serve', () => {
  it('--version prints the package version', async () => {
    const r = await regshim(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe((JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version);
  });

  it('--help lists every flag with its environment variable', async () => {
    const r = await regshim(['serve', '--help']);
    expect(r.code).toBe(0);
    for (const env of ['REGSHIM_UPSTREAM', 'REGSHIM_LISTEN', 'REGSHIM_LOG_LEVEL', 'REGSHIM_UPSTREAM_CA', 'REGSHIM_TLS_CERT', 'REGSHIM_CACHE_MAX_BYTES', 'REGSHIM_MAX_MANIFEST_BYTES', 'REGSHIM_INDEX_MEDIA_TYPE', 'REGSHIM_WORKERS']) {
      expect(r.stdout).toContain(env);
    }
  });

  it.each([
    [[], {}, /--upstream is required/],
    [['--upstream', 'registry.example.com'], {}, /must start with http:\/\/ or https:\/\/|is not a URL/],
    [['--upstream', 'http://x', '--listen', 'nope'], {}, /--listen "nope" must be host:port/],
    [[], { REGSHIM_UPSTREAM: 'http://x', REGSHIM_CACHE_MAX_BYTES: 'lots' }, /--cache-max-bytes "lots"/],
    [['--no-such-flag'], {}, /unknown option '--no-such-flag'/],
  ])('%j %j exits 2 and says what is wrong', async (args, env, message) => {
    const r = await regshim(args, env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('reads its settings from the environment alone', async () => {
    const registry = await cleanup.track(startRegistry());
    const dir = await cleanup.tempDir('regshim-cli-');
    const port = await freePort();
    const logFile = join(dir, 'regshim.log');
    await cleanup.track(
      startProcess({
        cmd: process.execPath,
        args: [bin],
        logFile,
        env: { ...process.env, REGSHIM_UPSTREAM: registry.url, REGSHIM_LISTEN: `127.0.0.1:${port}`, REGSHIM_LOG_LEVEL: 'debug', REGSHIM_WORKERS: '2' },
      }),
    );
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.status === 200, { timeoutMs: 15_000, what: 'regshim from env', logFile });
    expect((await fetch(`http://127.0.0.1:${port}/v2/`)).status).toBe(200);
    const lines = readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ msg: 'started workers', workers: 2 });
    expect(lines.find((l) => l.msg === 'listening')).toMatchObject({ url: `http://127.0.0.1:${port}`, upstream: registry.url });
    // debug level: health checks are logged too
    expect(lines.some((l) => l.msg === 'request' && l.level === 20)).toBe(true);
  });

  it('started as a command, runs on Node 24 with the memory tuning of its shebang', async () => {
    const registry = await cleanup.track(startRegistry());
    const proc = await cleanup.track(startShimProcess(registry.url));
    // env execs node in place, so the pid is node's own.
    const argv = readFileSync(`/proc/${proc.pid}/cmdline`, 'utf8').split('\0');
    const environ = readFileSync(`/proc/${proc.pid}/environ`, 'utf8').split('\0');
    expect(argv).toContain('--max-semi-space-size=1');
    expect(environ).toEqual(expect.arrayContaining(['MALLOC_ARENA_MAX=2', 'MALLOC_TRIM_THRESHOLD_=67108864']));
    const version = await runCommand(argv[0] as string, ['--version']);
    expect(version.stdout).toMatch(/^v24\./);
  });
});

describe('flags, environment and signals', () => {
  /** regshim from the bin with these args and env; resolves its URL and process. */
  async function serve(upstream: string, args: string[], env: Record<string, string>, port?: number) {
    const dir = await cleanup.tempDir('regshim-cli-');
    const proc = await cleanup.track(
      startProcess({ cmd: bin, args, logFile: join(dir, 'regshim.log'), env: { ...process.env, REGSHIM_UPSTREAM: upstream, ...env } }),
    );
    const url = `http://127.0.0.1:${port ?? (await freePort())}`;
    return { proc, url, logFile: join(dir, 'regshim.log') };
  }

  /** A manifest body of exactly `size` bytes (a plain image manifest, padded). */
  const manifestOf = (size: number) => {
    const doc = '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}';
    return Buffer.from(doc + ' '.repeat(size - doc.length));
  };
  const putStatus = async (url: string, size: number) =>
    (await putManifest(url, 'cli/size', 'x', manifestOf(size), 'application/vnd.oci.image.manifest.v1+json')).status;

  it('a flag wins over its environment variable, and sizes take suffixes', async () => {
    const registry = await cleanup.track(startRegistry());
    const [envPort, flagPort] = [await freePort(), await freePort()];
    const { url, logFile, proc } = await serve(
      registry.url,
      ['--listen', `127.0.0.1:${flagPort}`, '--max-manifest-bytes', '2KiB'],
      { REGSHIM_LISTEN: `127.0.0.1:${envPort}`, REGSHIM_MAX_MANIFEST_BYTES: '1k' },
      flagPort,
    );
    await waitFor(async () => (await fetch(`${url}/healthz`).catch(() => undefined))?.status === 200, { timeoutMs: 15_000, what: 'regshim on the flag port', logFile, process: proc });
    await expect(fetch(`http://127.0.0.1:${envPort}/healthz`)).rejects.toThrow();
    expect(await putStatus(url, 2048)).not.toBe(413);
    expect(await putStatus(url, 2049)).toBe(413);
  });

  it('reads a size with a suffix from the environment', async () => {
    const registry = await cleanup.track(startRegistry());
    const port = await freePort();
    const { url, logFile, proc } = await serve(registry.url, [], { REGSHIM_LISTEN: `127.0.0.1:${port}`, REGSHIM_MAX_MANIFEST_BYTES: '1k' }, port);
    await waitFor(async () => (await fetch(`${url}/healthz`).catch(() => undefined))?.status === 200, { timeoutMs: 15_000, what: 'regshim', logFile, process: proc });
    expect(await putStatus(url, 1024)).not.toBe(413);
    expect(await putStatus(url, 1025)).toBe(413);
  });

  it('on SIGTERM lets an upload in flight finish, then exits 0', async () => {
    const registry = await cleanup.track(startRegistry());
    const wire = await cleanup.track(startCountingProxy(registry.url));
    const port = await freePort();
    const { url, logFile, proc } = await serve(wire.url, ['--listen', `127.0.0.1:${port}`], {}, port);
    await waitFor(async () => (await fetch(`${url}/healthz`).catch(() => undefined))?.status === 200, { timeoutMs: 15_000, what: 'regshim', logFile, process: proc });
    const post = await fetch(`${url}/v2/cli/drain/blobs/uploads/`, { method: 'POST' });
    expect(post.status).toBe(202);
    const location = new URL(post.headers.get('location') ?? '', url);
    const req = http.request(location, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' } });
    const status = new Promise<number>((resolve, reject) => {
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
    });
    status.catch(() => undefined); // awaited below; a failure before that must not go unhandled
    req.write(Buffer.alloc(64 * 1024, 1));
    // The PATCH has reached the upstream: regshim holds it, its body still coming.
    await waitFor(async () => wire.requests.some((r) => r.method === 'PATCH'), { timeoutMs: 5_000, what: 'the PATCH upstream' });
    process.kill(proc.pid, 'SIGTERM');
    // Stopped accepting: a new connection is refused.
    await waitFor(async () => (await fetch(`${url}/healthz`).then(() => false, () => true)), { timeoutMs: 5_000, what: 'regshim to stop accepting' });
    req.end(Buffer.alloc(64 * 1024, 2));
    expect(await status).toBe(202);
    expect(await proc.exit).toEqual({ code: 0, signal: null });
  });
});

describe('regshim convert (inspect: inspect.test.ts)', () => {
  it('convert prints the manifest regshim stores for an index file', async () => {
    const file = join(fixturesDir(), 'index.json');
    const r = await regshim(['convert', file]);
    expect(r.code, r.stderr).toBe(0);
    const bytes = readFileSync(file);
    const detection = classifyManifest(bytes, undefined);
    if (detection.kind !== 'cache') throw new Error('fixture is not a cache');
    expect(JSON.parse(r.stdout)).toEqual(toImageManifest(detection.index, bytes, DEFAULT_INDEX_LAYER_MEDIA_TYPE).manifest);
  });

  it('convert refuses a file that is not a cache, exit 2', async () => {
    const r = await regshim(['convert', join(fixturesDir(), 'imgmanifest.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is not a BuildKit cache index/);
  });
});
