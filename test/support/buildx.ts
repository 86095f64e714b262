// The modern BuildKit engines, each from one Debian suite's packages, extracted (not
// installed) by scripts/ensure-deps.sh: trixie's dockerd 26.1.5 (BuildKit v0.13.2, buildx
// 0.13.1, containerd 1.7) and forky's dockerd 28.5.2 (BuildKit 0.25, buildx 0.29.1,
// containerd 2.1). Both start the same way. The docker driver exports registry caches only
// with the containerd image store, hence `containerd-snapshotter`. RUN steps use the
// machine's runc (bookworm's).
import { symlink, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Cleanup } from './cleanup.js';
import { startContainerd } from './containerd.js';
import { type Dockerd, isBuildStep, startEngine, testCacheDir } from './dockerd.js';
import type { RunOptions, RunResult } from './processes.js';

export interface Buildx {
  /** `docker buildx <args>` against this daemon; never throws on a non-zero exit. */
  buildx(args: string[], opts?: RunOptions): Promise<RunResult>;
  /**
   * `docker buildx build` of `ctx` (as image `app:t` unless `args` name a `-t`) with the
   * `--progress=rawjson` stream on stderr. `--network host`: with `--bridge=none` there is
   * no default network for RUN.
   */
  build(ctx: string, args: string[]): Promise<RunResult>;
  /** Drops the build cache and every image, so only a remote cache can make steps cached. */
  forgetLocal(): Promise<void>;
  docker: Dockerd['docker'];
  stop(): Promise<void>;
}

/** The Debian suite an engine comes from, and the BuildKit it embeds. */
export const BUILDKIT_OF = { trixie: '0.13', forky: '0.25' } as const;
export type Suite = keyof typeof BUILDKIT_OF;

export function suiteDir(suite: Suite): string {
  return join(testCacheDir(), suite, 'root');
}

/** A static binary for RUN steps in a FROM scratch build (trixie's tini package). */
export function tiniStatic(): string {
  return join(suiteDir('trixie'), 'usr', 'bin', 'tini-static');
}

/** Starts the suite's containerd and dockerd in temp folders; stop() ends both and unmounts what they mounted. */
export async function startBuildx(suite: Suite): Promise<Buildx> {
  const pkg = suiteDir(suite);
  const started = new Cleanup();
  try {
    const ctrd = await started.track(
      startContainerd({
        binDir: join(pkg, 'usr', 'bin'),
        // Snapshotters this machine has no use for, and whose probes only log errors.
        // containerd 2.1 takes the same config (it migrates `version = 2` itself, with a
        // warning). Its CRI, split into io.containerd.cri.v1.* plugins that the disabled
        // grpc.v1.cri ID no longer covers, starts with root and state in the temp folder
        // and finds no CNI: harmless. Disabling those too makes podsandbox and
        // sandbox-controllers fail to load, so they stay.
        disabledPlugins: ['btrfs', 'zfs', 'devmapper', 'aufs'].map((s) => `io.containerd.snapshotter.v1.${s}`),
      }),
    );
    const dockerd = await started.track(
      startEngine({
        pkgDir: pkg,
        containerdSock: ctrd.sock,
        // dockerd 26 has no --feature flag; the image store is a daemon.json feature.
        daemonConfig: { 'storage-driver': 'overlayfs', 'userland-proxy': false, features: { 'containerd-snapshotter': true } },
      }),
    );
    await mkdir(join(dockerd.clientDir, 'cli-plugins'));
    await symlink(join(pkg, 'usr', 'libexec', 'docker', 'cli-plugins', 'docker-buildx'), join(dockerd.clientDir, 'cli-plugins', 'docker-buildx'));
    const buildx = (args: string[], opts?: RunOptions): Promise<RunResult> => dockerd.docker(['buildx', ...args], opts);
    return {
      buildx,
      build: (ctx, args) => buildx(['build', '--network', 'host', '--progress=rawjson', ...(args.includes('-t') ? [] : ['-t', 'app:t']), ...args, ctx]),
      forgetLocal: async () => {
        for (const args of [['builder', 'prune', '-af'], ['image', 'prune', '-af']]) {
          const r = await dockerd.docker(args);
          if (r.code !== 0) throw new Error(`docker ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
        }
      },
      docker: dockerd.docker,
      stop: () => started.run(),
    };
  } catch (err) {
    await started.run();
    throw err;
  }
}

/**
 * The names of the build steps that ended cached, sorted, from the
 * `--progress=rawjson` stream: JSON status objects, one after another, each naming the
 * vertexes that changed. The plain printer is not used: it sometimes shows a cached last
 * step as blob downloads and DONE.
 */
export function cachedStepNames(rawjson: string): string[] {
  const cached = new Map<string, string>();
  for (const status of jsonObjects(rawjson)) {
    const vertexes = (status as { vertexes?: { digest: string; name?: string; cached?: boolean }[] }).vertexes ?? [];
    for (const v of vertexes) {
      if (v.cached === true && v.name !== undefined && isBuildStep(v.name)) cached.set(v.digest, v.name);
    }
  }
  return [...cached.values()].sort((a, b) => a.localeCompare(b));
}

/**
 * The digest of the cache manifest (index, list or image manifest) a `--cache-to
 * type=registry` build pushed, from its `--progress=rawjson` stream: BuildKit names it in a
 * status "writing cache manifest <digest>" or "writing cache image manifest <digest>".
 */
export function exportedCacheDigest(rawjson: string): string | undefined {
  return [...rawjson.matchAll(/"id":"writing cache (?:image )?manifest (sha256:[0-9a-f]{64})"/g)].at(-1)?.[1];
}

/** Splits a stream of concatenated JSON values at their top-level ends. */
function jsonObjects(text: string): unknown[] {
  const out: unknown[] = [];
  let depth = 0;
  let inString = false;
  let start = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{') {
      if (depth++ === 0) start = i;
    } else if (c === '}' && --depth === 0) {
      out.push(JSON.parse(text.slice(start, i + 1)));
    }
  }
  return out;
}
