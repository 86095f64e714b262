// Processes of the benchmark: each in its own process group, stopped by process group,
// never by name; plus what the kernel says about them (CPU time, peak RSS).
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logFile: string;
  exited: boolean;
}

const procs: Proc[] = [];
let tmpDir: string | undefined;
let interrupted = false;

export function progress(line: string): void {
  // Progress goes to stderr so that stdout carries only the Markdown report.
  process.stderr.write(`[bench] ${line}\n`);
}

export function setTmpDir(dir: string): void {
  tmpDir = dir;
}

export function wasInterrupted(): boolean {
  return interrupted;
}

export function startProc(name: string, command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Proc {
  const logFile = path.join(tmpDir!, `${name}.log`);
  const fd = openSync(logFile, 'a');
  // detached: the child calls setsid(), so it leads its own process group; stopping the
  // group also stops what it forks (nginx's worker, regshim's workers).
  const child = spawn(command, args, { cwd, env, detached: true, stdio: ['ignore', fd, fd] });
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

export async function stopProc(proc: Proc): Promise<void> {
  killGroup(proc, 'SIGTERM');
  const deadline = Date.now() + 5000;
  while (!proc.exited && Date.now() < deadline) await sleep(50);
  killGroup(proc, 'SIGKILL'); // stragglers, e.g. a worker its master left behind
  const i = procs.indexOf(proc);
  if (i >= 0) procs.splice(i, 1);
}

export function logTail(proc: Proc): string {
  try {
    return readFileSync(proc.logFile, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '';
  }
}

/** The last log lines of every process, for a failure report. */
export function exitedLogs(): string {
  return procs.map((p) => `--- ${p.name}${p.exited ? ' (had exited)' : ''}:\n${logTail(p)}`).join('\n');
}

let cleaned = false;
export async function cleanup(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  for (const proc of [...procs].reverse()) await stopProc(proc);
  if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
}

// Last resort if the script exits without cleanup() having finished: synchronous, so it
// still runs in 'exit'.
process.on('exit', () => {
  for (const proc of procs) killGroup(proc, 'SIGKILL');
  if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    interrupted = true;
    progress(`${signal}: stopping everything`);
    cleanup().finally(() => process.exit(128 + os.constants.signals[signal]));
  });
}

export async function freePorts(n: number): Promise<number[]> {
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

export async function waitReady(proc: Proc, url: string, okStatus = 200): Promise<void> {
  const deadline = Date.now() + 60_000;
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
    if (status === okStatus) return;
    if (Date.now() > deadline) throw new Error(`${proc.name} not ready at ${url} after 60 s:\n${logTail(proc)}`);
    await sleep(100);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------------------
// What the kernel knows: CPU time and peak RSS of a process group (the leader and what it
// forked: nginx's worker, regshim's workers).
// ---------------------------------------------------------------------------------------

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** The pids of a process group, read from /proc. */
export function groupPids(pgid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat && Number(stat[5]) === pgid) out.push(Number(entry));
  }
  return out;
}

/** Fields of /proc/PID/stat, numbered as in proc(5) (1-based, comm as one field). */
function readStat(pid: number): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const close = text.lastIndexOf(')');
  return ['', text.slice(0, text.indexOf(' ')), text.slice(text.indexOf('(') + 1, close), ...text.slice(close + 2).trim().split(' ')];
}

/** User + system CPU seconds of every live process of a group, and of their reaped children. */
export function groupCpuSeconds(pgid: number): number {
  let ticks = 0;
  for (const pid of groupPids(pgid)) {
    const s = readStat(pid);
    if (!s) continue;
    ticks += Number(s[14]) + Number(s[15]) + Number(s[16]) + Number(s[17]);
  }
  return ticks / TICKS_PER_SECOND;
}

/** Peak resident set (VmHWM) of each live process of a group, in MiB. */
export function groupPeakRssMiB(pgid: number): number[] {
  const out: number[] = [];
  for (const pid of groupPids(pgid)) {
    try {
      const kb = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (kb) out.push(Number(kb[1]) / 1024);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Minor and major page faults of a group (live processes). */
export function groupFaults(pgid: number): number {
  let n = 0;
  for (const pid of groupPids(pgid)) {
    const s = readStat(pid);
    if (s) n += Number(s[10]) + Number(s[12]);
  }
  return n;
}
