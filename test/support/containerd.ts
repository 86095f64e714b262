// A private containerd (root, state and socket under a temp dir) and its ctr client:
// containerd's push and fetch code is what BuildKit uses.
import { mkdir, writeFile } from 'node:fs/promises';
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

export interface Containerd {
  sock: string;
  root: string;
  logFile: string;
  /** `ctr -a SOCK <args>`; never throws on a non-zero exit. */
  ctr(args: string[], opts?: RunOptions): Promise<RunResult>;
  stop(): Promise<void>;
}

export interface ContainerdOptions {
  /** Where another containerd's `containerd`, `ctr` and shims are; default: the machine's. */
  binDir?: string;
  /** Plugins to disable besides CRI. */
  disabledPlugins?: string[];
}

/**
 * Shims put their sockets under /run/containerd/s whatever `state` says, and containerd 2.1
 * creates /run/containerd at start.
 */
const MACHINE_PATHS = ['/run/containerd'];

export async function startContainerd(opts: ContainerdOptions = {}): Promise<Containerd> {
  const machine = machinePaths(MACHINE_PATHS);
  const dir = await makeTempDir('regshim-ctrd-');
  const root = join(dir, 'root');
  const sock = join(dir, 'sock');
  const logFile = join(dir, 'containerd.log');
  const config = join(dir, 'config.toml');
  await mkdir(join(dir, 'opt'));
  await writeFile(
    config,
    [
      'version = 2',
      `root = "${root}"`,
      `state = "${join(dir, 'state')}"`,
      // CRI would want a CNI setup and watch the whole machine's images; not needed here.
      `disabled_plugins = ${JSON.stringify(['io.containerd.grpc.v1.cri', ...(opts.disabledPlugins ?? [])])}`,
      '[grpc]',
      `  address = "${sock}"`,
      '[ttrpc]',
      `  address = "${sock}.ttrpc"`,
      '[metrics]',
      '  address = ""',
      '[plugins]',
      '  [plugins."io.containerd.internal.v1.opt"]',
      `    path = "${join(dir, 'opt')}"`,
      '',
    ].join('\n'),
  );
  const bin = (name: string): string => (opts.binDir ? join(opts.binDir, name) : name);
  // containerd finds its shims (containerd-shim-runc-v2) on PATH.
  const env = opts.binDir ? { ...process.env, PATH: `${opts.binDir}:${process.env.PATH ?? ''}` } : process.env;
  const ctr = (args: string[], runOpts?: RunOptions): Promise<RunResult> => runCommand(bin('ctr'), ['-a', sock, ...args], runOpts);
  const removeAll = async (): Promise<void> => {
    await removeTempDir(dir);
    await machine.remove();
  };
  const proc = await startReady(
    { cmd: bin('containerd'), args: ['--config', config], env, logFile, cwd: dir, leftovers: [dir, ...machine.created] },
    {
      ready: async () => (await ctr(['version'], { timeoutMs: 5_000 })).code === 0,
      timeoutMs: 30_000,
      what: `containerd on ${sock}`,
      cleanup: removeAll,
    },
  );
  const stop = async (): Promise<void> => {
    await proc.stop();
    await removeAll();
  };
  return { sock, root, logFile, ctr, stop };
}

/**
 * Removes every image and every content blob in every namespace. Content is shared
 * between namespaces, so a fetch would otherwise be served from the local store.
 */
export async function cleanNamespaces(ctrd: Pick<Containerd, 'ctr'>): Promise<void> {
  const namespaces = lines(await must(ctrd, ['namespaces', 'ls', '-q']));
  for (const ns of namespaces) {
    const images = lines(await must(ctrd, ['-n', ns, 'images', 'ls', '-q']));
    if (images.length > 0) await must(ctrd, ['-n', ns, 'images', 'rm', ...images]);
    const blobs = lines(await must(ctrd, ['-n', ns, 'content', 'ls', '-q']));
    if (blobs.length > 0) await must(ctrd, ['-n', ns, 'content', 'rm', ...blobs]);
  }
}

async function must(ctrd: Pick<Containerd, 'ctr'>, args: string[]): Promise<string> {
  const r = await ctrd.ctr(args);
  if (r.code !== 0) throw new Error(`ctr ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

function lines(text: string): string[] {
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
}
