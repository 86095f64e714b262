// regshim under test: in this process (HTTP tests, log capture) or as a child process
// (restarts, replicas, memory bounds), always on a free loopback port.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type RawConfig, parseConfig } from '../../src/config.js';
import { type RegShim, createServer } from '../../src/server.js';
import { freePort, makeTempDir, removeTempDir, startReady } from './processes.js';

export interface RunningShim {
  url: string;
  /** host:port, as image references spell it. */
  host: string;
  shim: RegShim;
  /** Every log line, parsed. */
  logs: Record<string, unknown>[];
  stop(): Promise<void>;
}

export async function startShim(upstream: string, raw: Omit<RawConfig, 'upstream'> = {}): Promise<RunningShim> {
  const logs: Record<string, unknown>[] = [];
  const config = parseConfig({ listen: '127.0.0.1:0', logLevel: 'debug', ...raw, upstream }, { read: (path) => readFileSync(path, 'utf8') });
  const shim = createServer(config, { shutdownGraceMs: 1000, logDestination: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) } });
  const url = await shim.listen();
  return { url: url.origin, host: url.host, shim, logs, stop: () => shim.close() };
}

export interface ShimProcess {
  url: string;
  host: string;
  pid: number;
  logFile: string;
  stop(): Promise<void>;
}

const repoRoot = join(import.meta.dirname, '..', '..');

/** The built CLI (`npm run build` first) as its own process, the way users run it. */
export async function startShimProcess(upstream: string, extraArgs: string[] = []): Promise<ShimProcess> {
  const dir = await makeTempDir('regshim-proc-');
  const port = await freePort();
  const logFile = join(dir, 'regshim.log');
  const url = `http://127.0.0.1:${port}`;
  const proc = await startReady(
    {
      // Started through its shebang, which sets the memory tuning (docs/performance.md).
      cmd: join(repoRoot, 'bin', 'regshim.js'),
      args: ['--upstream', upstream, '--listen', `127.0.0.1:${port}`, ...extraArgs],
      logFile,
      env: { ...process.env, REGSHIM_LOG_LEVEL: 'info' },
      leftovers: [dir],
    },
    { ready: () => isHealthy(url), timeoutMs: 15_000, what: `regshim on port ${port}`, cleanup: () => removeTempDir(dir) },
  );
  return {
    url,
    host: `127.0.0.1:${port}`,
    pid: proc.pid,
    logFile,
    async stop() {
      await proc.stop();
      await removeTempDir(dir);
    },
  };
}

/** GET /healthz is 200: regshim is up. */
export async function isHealthy(url: string): Promise<boolean> {
  return (await fetch(`${url}/healthz`).catch(() => undefined))?.status === 200;
}
