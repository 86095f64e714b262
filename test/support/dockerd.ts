// dockerd from extracted Debian packages, never installed: 20.10 (bookworm's docker.io,
// embedded BuildKit ~v0.8, a real cache importer that ignores the image-manifest form) and,
// through buildx.ts, 26 (trixie's, BuildKit v0.13). Both extracted by scripts/ensure-deps.sh.
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { machinePaths } from './machine-paths.js';
import {
  makeTempDir,
  removeTempDir,
  runCommand,
  startReady,
  type RunOptions,
  type RunResult,
} from './processes.js';

export interface Dockerd {
  logFile: string;
  /** The client's DOCKER_CONFIG folder (empty unless the caller puts something there). */
  clientDir: string;
  /** The extracted `docker` client against this daemon; never throws on a non-zero exit. */
  docker(args: string[], opts?: RunOptions): Promise<RunResult>;
  stop(): Promise<void>;
}

/** Where ensure-deps.sh downloads and extracts packages. */
export function testCacheDir(): string {
  return process.env.REGSHIM_TEST_CACHE ?? join(homedir(), '.cache', 'regshim-test');
}

export function dockerPackageDir(): string {
  return join(testCacheDir(), 'docker.io');
}

// dockerd 20.10 writes these whatever its config says.
const MACHINE_PATHS = ['/etc/docker/key.json', '/run/docker'];

export interface EngineOptions {
  /** An extracted package tree with usr/sbin/dockerd and usr/bin/docker. */
  pkgDir: string;
  containerdSock: string;
  /** daemon.json entries beyond the paths, the containerd and the network settings. */
  daemonConfig: Record<string, unknown>;
}

/** dockerd with every path in a temp folder, its own containerd, and no networking. */
export async function startEngine(opts: EngineOptions): Promise<Dockerd> {
  const dockerdBin = join(opts.pkgDir, 'usr', 'sbin', 'dockerd');
  if (!existsSync(dockerdBin)) throw new Error(`${dockerdBin} is missing: run scripts/ensure-deps.sh`);
  const machine = machinePaths(MACHINE_PATHS);
  const dir = await makeTempDir('regshim-dockerd-');
  const sock = join(dir, 'docker.sock');
  const logFile = join(dir, 'dockerd.log');
  const config = join(dir, 'daemon.json');
  const clientDir = join(dir, 'client');
  await mkdir(clientDir);
  await writeFile(
    config,
    JSON.stringify({
      'data-root': join(dir, 'root'),
      'exec-root': join(dir, 'exec'),
      pidfile: join(dir, 'dockerd.pid'),
      hosts: [`unix://${sock}`],
      containerd: opts.containerdSock,
      'containerd-namespace': 'dk',
      'containerd-plugins-namespace': 'dk-plugins',
      // No networking: builds are FROM scratch, and the machine's firewall stays untouched.
      iptables: false,
      ip6tables: false,
      bridge: 'none',
      ...opts.daemonConfig,
    }),
  );
  const env = { ...process.env, PATH: `${join(opts.pkgDir, 'usr', 'bin')}:${process.env.PATH ?? ''}` };
  const clientEnv = {
    ...env,
    DOCKER_HOST: `unix://${sock}`,
    DOCKER_BUILDKIT: '1',
    // Keep the client's config.json (and buildx's state) out of $HOME.
    DOCKER_CONFIG: clientDir,
  };
  const docker = (args: string[], runOpts: RunOptions = {}): Promise<RunResult> =>
    runCommand(join(opts.pkgDir, 'usr', 'bin', 'docker'), args, { ...runOpts, env: { ...clientEnv, ...runOpts.env } });

  const removeAll = async (): Promise<void> => {
    await removeTempDir(dir);
    await machine.remove();
  };
  const proc = await startReady(
    // Killed with the runner, dockerd leaves its temp dir and the machine paths it created.
    { cmd: dockerdBin, args: ['--config-file', config], env, logFile, cwd: dir, leftovers: [dir, ...machine.created] },
    { ready: async () => (await docker(['version'], { timeoutMs: 10_000 })).code === 0, timeoutMs: 60_000, what: `dockerd on ${sock}`, cleanup: removeAll },
  );
  const stop = async (): Promise<void> => {
    await proc.stop();
    await removeAll();
  };
  return { logFile, clientDir, docker, stop };
}

/** dockerd 20.10 and its BuildKit ~v0.8, on the machine's containerd. */
export function startDockerd(opts: { containerdSock: string; insecureRegistries: string[] }): Promise<Dockerd> {
  return startEngine({
    pkgDir: dockerPackageDir(),
    containerdSock: opts.containerdSock,
    daemonConfig: { 'storage-driver': 'vfs', 'insecure-registries': opts.insecureRegistries, features: { buildkit: true } },
  });
}

/** A Dockerfile step as BuildKit names it: `[2/3] COPY ...`, or `[stage 2/3] COPY ...` in a multi-stage build. */
export function isBuildStep(vertexName: string): boolean {
  return /^\[(?:[^\]]+ )?\d+\/\d+\] /.test(vertexName);
}

/** The names of the build steps that BuildKit reported as CACHED (from --progress=plain), in order. */
export function cachedSteps(progress: string): string[] {
  const names = new Map<string, string>();
  const cached: string[] = [];
  for (const line of progress.split('\n')) {
    const step = /^#(\d+) (.*)$/.exec(line);
    if (step?.[1] && step[2] && isBuildStep(step[2])) names.set(step[1], step[2]);
    const hit = /^#(\d+) CACHED$/.exec(line);
    if (hit?.[1]) cached.push(names.get(hit[1]) ?? `#${hit[1]}`);
  }
  return cached;
}
