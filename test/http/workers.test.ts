// --workers: several processes behind one port, started through the bin as users start it.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cleanup } from '../support/cleanup.js';
import { freePort, waitFor } from '../support/processes.js';
import { type Registry, startRegistry } from '../support/registry.js';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'regshim.js');
const cleanup = new Cleanup();
let registry: Registry;

interface Primary {
  child: ChildProcess;
  url: string;
  logFile: string;
  exit: Promise<number | null>;
  stop(): Promise<void>;
}

/** The bin as its own process group (stopped by group), with its exit code. */
async function startPrimary(args: string[], ready = true): Promise<Primary> {
  const dir = await cleanup.tempDir('regshim-workers-');
  const port = await freePort();
  const logFile = join(dir, 'regshim.log');
  const fd = openSync(logFile, 'a');
  const child = spawn(bin, ['--upstream', registry.url, '--listen', `127.0.0.1:${port}`, ...args], { detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const primary: Primary = {
    child,
    url: `http://127.0.0.1:${port}`,
    logFile,
    exit,
    async stop() {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      await exit;
    },
  };
  cleanup.track(Promise.resolve(primary));
  if (ready) {
    const listening = () => readFileSync(logFile, 'utf8').split('\n').filter((l) => l.includes('"msg":"listening"')).length;
    await waitFor(async () => listening() === 2, { timeoutMs: 20_000, what: 'two regshim workers listening', logFile });
  }
  return primary;
}

/** The children of a primary, from /proc. */
function workerPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** The JSON log lines (stderr, in the same file, is not JSON). */
const logLines = (p: Primary) => readFileSync(p.logFile, 'utf8').trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);

/** A GET on a new connection each time, so that connections go to the workers in turn. */
const getNew = (url: string) => new Promise<number>((resolve, reject) => {
  http.get(url, { agent: false }, (res) => {
    res.resume();
    res.on('end', () => resolve(res.statusCode ?? 0));
  }).on('error', reject);
});

beforeAll(async () => {
  registry = await cleanup.track(startRegistry());
});
afterAll(() => cleanup.run());

describe('--workers 2', () => {
  it('serves from both workers, with the memory tuning of the shebang, and /metrics counts the requests of all', async () => {
    const p = await startPrimary(['--workers', '2']);
    const workers = workerPids(p.child.pid!);
    for (const pid of workers) {
      expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).toContain('--max-semi-space-size=1');
      expect(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')).toEqual(expect.arrayContaining(['MALLOC_ARENA_MAX=2', 'MALLOC_TRIM_THRESHOLD_=67108864']));
    }
    for (let i = 0; i < 10; i++) expect(await getNew(`${p.url}/v2/`)).toBe(200);
    const metrics = await (await fetch(`${p.url}/metrics`)).text();
    expect(metrics).toMatch(/^regshim_requests_total\{route="base",method="GET",status="200"\} 10$/m);
    await waitFor(async () => logLines(p).filter((l) => l.msg === 'request').length >= 10, { timeoutMs: 5000, what: 'request logs' });
    const servedBy = new Set(logLines(p).filter((l) => l.msg === 'request').map((l) => l.worker));
    expect(servedBy).toEqual(new Set([1, 2]));
  });

  it('on SIGTERM lets an upload in flight finish, then every process exits 0', async () => {
    const p = await startPrimary(['--workers', '2']);
    const workers = workerPids(p.child.pid!);
    const post = await fetch(`${p.url}/v2/drain/blobs/uploads/`, { method: 'POST' });
    expect(post.status).toBe(202);
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(new URL(post.headers.get('location')!), { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write(Buffer.alloc(1024, 1), () => {
        // The body is on its way: stop, then finish it.
        setTimeout(() => {
          process.kill(p.child.pid!, 'SIGTERM');
          setTimeout(() => req.end(Buffer.alloc(1024, 2)), 300);
        }, 100);
      });
    });
    expect(status).toBe(202);
    expect(await p.exit).toBe(0);
    for (const pid of workers) expect(() => process.kill(pid, 0)).toThrow();
  });

  it('replaces a worker that dies', async () => {
    const p = await startPrimary(['--workers', '2']);
    const [victim] = workerPids(p.child.pid!);
    process.kill(victim!, 'SIGKILL');
    await waitFor(async () => {
      const now = workerPids(p.child.pid!);
      return now.length === 2 && !now.includes(victim!);
    }, { timeoutMs: 15_000, what: 'a new worker' });
    expect(logLines(p).some((l) => l.msg === 'a worker died; starting another')).toBe(true);
    for (let i = 0; i < 4; i++) expect(await getNew(`${p.url}/v2/`)).toBe(200);
  });

  it('exits 1, without restarting workers, when they cannot listen', async () => {
    const p = await startPrimary(['--workers', '2']);
    const busy = await startPrimary(['--workers', '2', '--listen', new URL(p.url).host], false);
    expect(await busy.exit).toBe(1);
    expect(readFileSync(busy.logFile, 'utf8')).toMatch(/EADDRINUSE/);
    expect(logLines(busy).filter((l) => l.msg === 'a worker died; starting another')).toEqual([]);
  });
});
