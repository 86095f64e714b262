// What the BuildKit e2e tests share: the real registry (distribution 2.8), the strict-registry
// SIMULATION in front of it, one regshim in front of each, dockerd 26 with buildx (BuildKit
// 0.13), dockerd 28.5 with buildx (BuildKit 0.25) and dockerd 20.10 (BuildKit 0.8), both
// started on first use, and the build context.
// Everything is stopped through the caller's Cleanup.
import { join } from 'node:path';
import { type Buildx, type Suite, cachedStepNames, startBuildx, tiniStatic } from './buildx.js';
import { writeBuildContext } from './build-context.js';
import type { Cleanup } from './cleanup.js';
import { startContainerd } from './containerd.js';
import { type Dockerd, cachedSteps, startDockerd } from './dockerd.js';
import type { RunResult } from './processes.js';
import { type Registry, startRegistry } from './registry.js';
import { type RunningShim, startShim } from './regshim.js';
import { type StrictGate, startStrictGate } from './strict-gate.js';

export const UPSTREAMS = ['distribution 2.8', 'strict registry (simulation)'] as const;
export type UpstreamName = (typeof UPSTREAMS)[number];

export interface Upstream {
  /** Where the cache goes; repositories differ, the registry behind both is the same. */
  repo: string;
  /** regshim in front of this upstream. */
  shim: RunningShim;
  /** What regshim's `--upstream` names: the registry, or the gate in front of it. */
  url: string;
}

/** A modern BuildKit (dockerd with buildx) and the two builds the tests run with it. */
export interface Builder {
  bx: Buildx;
  /** From an empty builder, builds `ctx` with `--cache-to type=registry,ref=...,mode=max<opts>`. */
  exportCache(ctx: string, ref: string, opts?: string): Promise<RunResult>;
  /** From an empty builder, builds `ctx` with `--cache-from ref`; the cached steps. */
  importCached(ctx: string, ref: string): Promise<string[]>;
}

/** `bx`, `exportCache` and `importCached` are BuildKit 0.13's (trixie's engine), started with the bed. */
export interface CacheBed extends Builder {
  registry: Registry;
  gate: StrictGate;
  upstreams: Record<UpstreamName, Upstream>;
  workDir: string;
  /** The build context (build-context.ts) with its default files. */
  ctx: string;
  /** The engine of a Debian suite: BuildKit 0.13 (trixie) or 0.25 (forky), started on first use. */
  builder(suite: Suite): Promise<Builder>;
  /** From an empty builder, BuildKit 0.8 builds the context with `--cache-from ref`; the cached steps. */
  importByOld(ref: string): Promise<string[]>;
}

export async function startCacheBed(cleanup: Cleanup): Promise<CacheBed> {
  const workDir = await cleanup.tempDir('regshim-e2e-buildx-');
  const registry = await cleanup.track(startRegistry());
  const gate = await cleanup.track(startStrictGate(registry.url));
  const upstreams = {
    'distribution 2.8': { repo: 'team/app', shim: await cleanup.track(startShim(registry.url)), url: registry.url },
    'strict registry (simulation)': { repo: 'strict/app', shim: await cleanup.track(startShim(gate.url)), url: gate.url },
  };
  const builders = new Map<Suite, Promise<Builder>>();
  const builder = (suite: Suite): Promise<Builder> => {
    let started = builders.get(suite);
    if (!started) {
      started = cleanup.track(startBuildx(suite)).then(builderOf);
      builders.set(suite, started);
    }
    return started;
  };
  const trixie = await builder('trixie');
  const ctx = await writeBuildContext(join(workDir, 'ctx'), tiniStatic());

  let old: Promise<Dockerd> | undefined;
  const oldDockerd = (): Promise<Dockerd> =>
    (old ??= (async () => {
      const ctrd = await cleanup.track(startContainerd());
      // dockerd takes every 127.0.0.0/8 registry as plain http, regshims started later too.
      return cleanup.track(startDockerd({ containerdSock: ctrd.sock, insecureRegistries: [] }));
    })());

  return {
    registry,
    gate,
    upstreams,
    ...trixie,
    workDir,
    ctx,
    builder,
    async importByOld(ref) {
      const dockerd = await oldDockerd();
      const build = mustSucceed(await dockerd.docker(['build', '--network', 'host', '--progress=plain', '--cache-from', ref, '-t', 'local/t', ctx]));
      for (const args of [['builder', 'prune', '-af'], ['rmi', '-f', 'local/t']]) mustSucceed(await dockerd.docker(args));
      return cachedSteps(build.stderr).sort((a, b) => a.localeCompare(b));
    },
  };
}

function builderOf(bx: Buildx): Builder {
  return {
    bx,
    async exportCache(buildCtx, ref, opts = '') {
      await bx.forgetLocal();
      return bx.build(buildCtx, ['--cache-to', `type=registry,ref=${ref},mode=max${opts}`]);
    },
    async importCached(buildCtx, ref) {
      await bx.forgetLocal();
      return cachedStepNames(mustSucceed(await bx.build(buildCtx, ['--cache-from', `type=registry,ref=${ref}`])).stderr);
    },
  };
}

function mustSucceed(r: RunResult): RunResult {
  if (r.code !== 0) throw new Error(`exited ${r.code}:\n${r.stderr.slice(-4000)}`);
  return r;
}

/** regshim's request log since `from` (an index into shim.logs), as "METHOD ref status". */
export function requestsSince(shim: RunningShim, from: number): string[] {
  return shim.logs.slice(from).filter((l) => l.msg === 'request').map((l) => `${String(l.method)} ${String(l.ref)} ${String(l.status)}`);
}
