// The README's buildx example, run as written with BuildKit 0.25 (dockerd 28.5's): its
// example hosts stand for a regshim in front of the real registry (distribution 2.8) and
// for that registry. The first build exports the cache; after the builder forgets
// everything, the same command gets every step from the cache.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALL_STEPS, writeBuildContext } from '../support/build-context.js';
import { type Buildx, cachedStepNames, startBuildx, tiniStatic } from '../support/buildx.js';
import { Cleanup } from '../support/cleanup.js';
import { fences, readPage } from '../support/markdown.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { type ShimProcess, startShimProcess } from '../support/regshim.js';

/** The README's `docker buildx build` block, one command, as its words after `docker buildx build`. */
function readmeBuildArgs(): string[] {
  const block = fences(readPage('README.md')).filter((b) => b.lang === 'sh' && b.body.startsWith('docker buildx build'));
  expect(block).toHaveLength(1);
  const words = (block[0]?.body ?? '').replace(/\\\n/g, ' ').trim().split(/\s+/);
  expect(words.slice(0, 3)).toEqual(['docker', 'buildx', 'build']);
  expect(words.at(-1)).toBe('.');
  return words.slice(3, -1);
}

const cleanup = new Cleanup();
let registry: Registry;
let shim: ShimProcess;
let bx: Buildx;
let ctx: string;

beforeAll(async () => {
  registry = await cleanup.track(startRegistry());
  shim = await cleanup.track(startShimProcess(registry.url));
  bx = await cleanup.track(startBuildx('forky'));
  ctx = await writeBuildContext(join(await cleanup.tempDir('regshim-readme-ctx-'), 'ctx'), tiniStatic());
});
afterAll(() => cleanup.run());

describe('README: Using it with buildx and BuildKit, with BuildKit 0.25', () => {
  it('exports through regshim, then a builder that forgot everything gets every step cached', async () => {
    const args = readmeBuildArgs().map((w) => w.replaceAll('localhost:5000', shim.host).replaceAll('registry.example.com', registry.host));
    expect(args.join(' ')).toContain(`ref=${shim.host}/team/app:cache`);

    const exported = await bx.build(ctx, args);
    expect(exported.code, exported.stderr.slice(-2000)).toBe(0);
    const stored = await fetch(`${registry.url}/v2/team/app/manifests/cache`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    expect(stored.status).toBe(200);

    await bx.forgetLocal();
    const imported = await bx.build(ctx, args);
    expect(imported.code, imported.stderr.slice(-2000)).toBe(0);
    expect(cachedStepNames(imported.stderr)).toEqual(ALL_STEPS);
  });
});
