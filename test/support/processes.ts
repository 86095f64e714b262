// Long-lived child processes for e2e tests: each gets its own process group so that
// stop() also ends whatever it forked, and nothing is ever killed by name. A test runner
// that dies leaves none of them behind: see the process-group registry below.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface StartOptions {
  cmd: string;
  args: string[];
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Paths to remove if the runner dies before stop() (files a daemon writes outside its temp dir). */
  leftovers?: string[];
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Started {
  pid: number;
  /** Has the process exited (by itself or through stop())? */
  exited(): boolean;
  /** Resolves when the process has exited, with its code or signal. */
  exit: Promise<Exit>;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------
// Process-group registry. Every group started here is killed when this process exits,
// however it exits: normally, by an uncaught error, or by SIGINT/SIGTERM/SIGHUP. A process
// killed outright (SIGKILL, OOM) runs no handler, so each group is also written to the
// folder named by REGSHIM_TEST_PROCESSES, which the runner's global teardown
// (test/support/global-setup.ts) sweeps with killRegisteredGroups().
// ---------------------------------------------------------------------------------------

export const PROCESS_DIR_ENV = 'REGSHIM_TEST_PROCESSES';

interface Registered {
  pid: number;
  cmd: string;
  leftovers: string[];
}

const live = new Map<number, Registered>();
let handlersInstalled = false;

function register(entry: Registered): void {
  live.set(entry.pid, entry);
  const dir = process.env[PROCESS_DIR_ENV];
  if (dir) writeFileSync(join(dir, String(entry.pid)), JSON.stringify(entry));
  if (!handlersInstalled) installHandlers();
}

function unregister(pid: number): void {
  live.delete(pid);
  const dir = process.env[PROCESS_DIR_ENV];
  if (dir) {
    try {
      unlinkSync(join(dir, String(pid)));
    } catch {
      // already swept
    }
  }
}

/** SIGKILLs a process group and removes what it leaves outside its temp dir; synchronous, for exit handlers. */
function killGroup(entry: Registered): void {
  try {
    process.kill(-entry.pid, 'SIGKILL');
  } catch {
    // ESRCH: the group is already gone.
  }
  for (const path of entry.leftovers) rmSync(path, { recursive: true, force: true });
}

function killAllLive(): void {
  for (const entry of [...live.values()]) {
    killGroup(entry);
    unregister(entry.pid);
  }
}

function installHandlers(): void {
  handlersInstalled = true;
  process.on('exit', killAllLive);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    // Only when nobody else handles the signal: then its default (exit) is what happens next.
    if (process.listenerCount(sig) > 0) continue;
    process.once(sig, () => {
      killAllLive();
      process.kill(process.pid, sig);
    });
  }
}

/** Kills every group recorded in `dir` (one file per group) and removes the files. */
export function killRegisteredGroups(dir: string): number {
  let killed = 0;
  for (const file of readdirSync(dir)) {
    try {
      killGroup(JSON.parse(readFileSync(join(dir, file), 'utf8')) as Registered);
      killed++;
    } finally {
      rmSync(join(dir, file), { force: true });
    }
  }
  return killed;
}

const KILL_AFTER_MS = 5_000;

export async function startProcess(opts: StartOptions): Promise<Started> {
  const log = await open(opts.logFile, 'a');
  const child = spawn(opts.cmd, opts.args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    detached: true,
    stdio: ['ignore', log.fd, log.fd],
  });
  // Listen before any await: 'spawn' and 'exit' may fire while the log is being closed.
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  let hasExited = false;
  const exit = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      hasExited = true;
      resolve({ code, signal });
    });
  });
  // The child holds its own copy of the log's descriptor.
  await Promise.all([spawned, log.close()]);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${opts.cmd}: no pid after spawn`);
  // A detached child must not keep the test runner alive.
  child.unref();
  register({ pid, cmd: opts.cmd, leftovers: opts.leftovers ?? [] });

  const signalGroup = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-pid, sig);
    } catch {
      // ESRCH: the group is already gone.
    }
  };

  return {
    pid,
    exited: () => hasExited,
    exit,
    async stop() {
      signalGroup('SIGTERM');
      const timer = setTimeout(() => signalGroup('SIGKILL'), KILL_AFTER_MS);
      await exit;
      clearTimeout(timer);
      // The leader may exit before its children (containerd-shim, buildkit workers).
      signalGroup('SIGKILL');
      unregister(pid);
    },
  };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Killed (SIGKILL) after this long; the result then has code -1. Default 120 s. */
  timeoutMs?: number;
}

/** Runs a short command to completion; never throws on a non-zero exit, the caller asserts. */
export function runCommand(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 120_000,
      killSignal: 'SIGKILL',
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.once('error', reject);
    child.once('close', (code) =>
      resolve({
        code: code ?? -1,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
  });
}

export interface WaitOptions {
  timeoutMs: number;
  what: string;
  /** Its last lines go into the timeout error. */
  logFile?: string;
  /** Give up at once when this process has exited: it will never become ready. */
  process?: Started;
}

export async function waitFor(check: () => Promise<boolean>, opts: WaitOptions): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    if (opts.process?.exited()) {
      throw new Error(`${opts.what}: process exited before it was ready${await tailOf(opts.logFile)}`);
    }
    if (Date.now() >= deadline) break;
    await sleep(50);
  }
  const because = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
  throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}${because}${await tailOf(opts.logFile)}`);
}

async function tailOf(logFile: string | undefined): Promise<string> {
  return logFile ? `\n--- tail of ${logFile} ---\n${await logTail(logFile)}` : '';
}

/**
 * Starts a process and waits until `ready` says so; if it never does, stops it, runs
 * `cleanup` and throws. What every long-lived test process needs.
 */
export async function startReady(
  start: StartOptions,
  wait: Omit<WaitOptions, 'logFile' | 'process'> & { ready: () => Promise<boolean>; cleanup?: () => Promise<void> },
): Promise<Started> {
  const proc = await startProcess(start);
  try {
    await waitFor(wait.ready, { timeoutMs: wait.timeoutMs, what: wait.what, logFile: start.logFile, process: proc });
  } catch (err) {
    await proc.stop();
    await wait.cleanup?.();
    throw err;
  }
  return proc;
}

export async function logTail(file: string, lines = 30): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).split('\n').slice(-lines).join('\n');
  } catch (err) {
    return `(cannot read: ${(err as Error).message})`;
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no port from listen(0)'))));
    });
  });
}

export function makeTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Unmounts whatever is still mounted under it (a container runtime's overlays), then deletes it. */
export async function removeTempDir(dir: string): Promise<void> {
  await unmountUnder(dir);
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

async function unmountUnder(dir: string): Promise<void> {
  const inside = (await mountPoints()).filter((m) => m === dir || m.startsWith(`${dir}/`));
  // Deepest first: a mount inside another keeps the outer one busy.
  for (const point of inside.sort((a, b) => b.length - a.length)) {
    const r = await runCommand('umount', [point], { timeoutMs: 10_000 });
    // Still busy (a process that outlived its group): detach it so the folder can go.
    if (r.code !== 0) await runCommand('umount', ['-l', point], { timeoutMs: 10_000 });
  }
}

async function mountPoints(): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  // Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
  return info
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))));
}
