// What the BuildKit e2e tests share: the real registry (distribution 2.8), the strict-registry
// SIMULATION in front of it, one regshim in front of each, dockerd 26 with buildx, and the
// build context. Everything is stopped through the caller's Cleanup.
import { join } from 'node:path';
import { type Buildx, startBuildx, tiniStatic } from './buildx.js';
import { writeBuildContext } from './build-context.js';
import type { Cleanup } from './cleanup.js';
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
}

export interface CacheBed {
  registry: Registry;
  gate: StrictGate;
  upstreams: Record<UpstreamName, Upstream>;
  bx: Buildx;
  workDir: string;
  /** The build context (build-context.ts) with its default files. */
  ctx: string;
}

export async function startCacheBed(cleanup: Cleanup): Promise<CacheBed> {
  const workDir = await cleanup.tempDir('regshim-e2e-buildx-');
  const registry = await cleanup.track(startRegistry());
  const gate = await cleanup.track(startStrictGate(registry.url));
  const upstreams = {
    'distribution 2.8': { repo: 'team/app', shim: await cleanup.track(startShim(registry.url)) },
    'strict registry (simulation)': { repo: 'strict/app', shim: await cleanup.track(startShim(gate.url)) },
  };
  const bx = await cleanup.track(startBuildx());
  const ctx = await writeBuildContext(join(workDir, 'ctx'), tiniStatic());
  return { registry, gate, upstreams, bx, workDir, ctx };
}

/** regshim's request log since `from` (an index into shim.logs), as "METHOD ref status". */
export function requestsSince(shim: RunningShim, from: number): string[] {
  return shim.logs.slice(from).filter((l) => l.msg === 'request').map((l) => `${String(l.method)} ${String(l.ref)} ${String(l.status)}`);
}
