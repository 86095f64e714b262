// BuildKit 0.13's caches through regshim under load and over time: two builds export to one
// tag at once, an image carries an inline cache, and the registry's garbage collection keeps
// every blob a cache needs. Each against the real registry and against the strict-registry
// simulation in front of it; BuildKit 0.8's reading of 0.13's caches has its control here.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getManifest } from '../support/blobs.js';
import { ALL_STEPS, OLD_HITS, writeBuildContext } from '../support/build-context.js';
import { tiniStatic } from '../support/buildx.js';
import { type CacheBed, UPSTREAMS, requestsSince, startCacheBed } from '../support/cache-bed.js';
import { Cleanup } from '../support/cleanup.js';
import { startShim } from '../support/regshim.js';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

const cleanup = new Cleanup();
let bed: CacheBed;
/** The same build with another notes.txt: its last step differs, the other five do not. */
let otherCtx: string;

beforeAll(async () => {
  bed = await startCacheBed(cleanup);
  otherCtx = await writeBuildContext(join(bed.workDir, 'ctx-other'), tiniStatic(), { notes: 'other notes\n' });
});

afterAll(() => cleanup.run());

/** Every blob of the index that regshim at `shimUrl` serves is in the registry, straight from it; returns the index digest. */
async function expectEveryBlobStored(shimUrl: string, repo: string, tag: string): Promise<string | null> {
  const served = await getManifest(shimUrl, repo, tag);
  expect(served.status).toBe(200);
  expect(served.headers.get('content-type')).toBe(OCI_INDEX);
  const index = JSON.parse(served.bytes.toString('utf8')) as { manifests: { digest: string }[] };
  const statuses = await Promise.all(
    index.manifests.map(async (d) => (await fetch(`${bed.registry.url}/v2/${repo}/blobs/${d.digest}`, { method: 'HEAD' })).status),
  );
  expect(statuses).toEqual(index.manifests.map(() => 200));
  return served.headers.get('docker-content-digest');
}

describe("the control: BuildKit 0.8 reads BuildKit 0.13's cache straight from distribution 2.8", () => {
  it('gets the hits it gets through regshim: what it misses is not regshim', async () => {
    const ref = `${bed.registry.host}/control/old:cache`;
    const exported = await bed.exportCache(bed.ctx, ref);
    expect(exported.code, exported.stderr).toBe(0);
    expect(await bed.importByOld(ref)).toEqual(OLD_HITS);
  });
});

describe.each(UPSTREAMS)('BuildKit 0.13 through regshim in front of %s', (name) => {
  const up = () => bed.upstreams[name];
  const ref = (tag: string) => `${up().shim.host}/${up().repo}:${tag}`;

  it('two builds export to the same tag at once: both succeed, and the tag holds one complete cache', async () => {
    const tag = 'cache-race';
    await bed.bx.forgetLocal();
    const mark = up().shim.logs.length;
    const [one, two] = await Promise.all(
      [bed.ctx, otherCtx].map((ctx, i) => bed.bx.build(ctx, ['--cache-to', `type=registry,ref=${ref(tag)},mode=max`, '-t', `app:race${i}`])),
    );
    expect(one?.code, one?.stderr).toBe(0);
    expect(two?.code, two?.stderr).toBe(0);
    expect(requestsSince(up().shim, mark).filter((r) => r === `PUT ${tag} 201`)).toHaveLength(2);
    await expectEveryBlobStored(up().shim.url, up().repo, tag);
    // Whichever build wrote last: its own build gets all six steps, the other all but notes.txt.
    const counts = [(await bed.importCached(bed.ctx, ref(tag))).length, (await bed.importCached(otherCtx, ref(tag))).length];
    expect(counts.sort()).toEqual([ALL_STEPS.length - 1, ALL_STEPS.length]);
  });

  it('an image pushed with an inline cache through regshim imports as a cache source', async () => {
    const image = ref('inline');
    await bed.bx.forgetLocal();
    const pushed = await bed.bx.build(bed.ctx, ['--cache-to', 'type=inline', '--push', '-t', image]);
    expect(pushed.code, pushed.stderr).toBe(0);
    // An inline cache is mode=min: it holds the final stage's steps. Those hit, so the tools
    // stage is never needed, and BuildKit reports its steps as cached too.
    expect(await bed.importCached(bed.ctx, image)).toEqual(ALL_STEPS);
  });
});

describe("the registry's garbage collection", () => {
  it('after `garbage-collect --delete-untagged`, a fresh regshim serves every cache whole: 0.13 and 0.8 import it', async () => {
    const tag = 'cache-gc';
    const digests = new Map<string, string | null>();
    for (const name of UPSTREAMS) {
      const { shim, repo } = bed.upstreams[name];
      // The first cache becomes untagged when the second replaces it: something to collect.
      for (const ctx of [otherCtx, bed.ctx]) {
        const exported = await bed.exportCache(ctx, `${shim.host}/${repo}:${tag}`);
        expect(exported.code, exported.stderr).toBe(0);
      }
      digests.set(name, (await getManifest(shim.url, repo, tag)).headers.get('docker-content-digest'));
    }
    const gc = await bed.registry.collectGarbage();
    expect(gc.code, gc.stderr).toBe(0);
    expect(gc.stdout).toMatch(/blob eligible for deletion/);

    for (const name of UPSTREAMS) {
      const { repo, url } = bed.upstreams[name];
      // A fresh regshim knows nothing: it reads the index back from the registry, where
      // only the stored manifest's reference kept the index blob alive.
      const fresh = await cleanup.track(startShim(url));
      expect(await expectEveryBlobStored(fresh.url, repo, tag), name).toBe(digests.get(name));
      expect(await bed.importCached(bed.ctx, `${fresh.host}/${repo}:${tag}`), name).toEqual(ALL_STEPS);
      expect(await bed.importByOld(`${fresh.host}/${repo}:${tag}`), name).toEqual(OLD_HITS);
    }
  });
});
