// BuildKit 0.25's default cache export (BuildKit's own image-manifest form) through regshim
// in front of distribution 2.8: BuildKit 0.8, which reads only the index form and ignores
// this one silently, gets an index made from it; 0.13 and 0.25 read that index too. From
// regshim as users start it (default flags), on a replica, after a restart and after the
// registry's garbage collection. The control: 0.8 straight from the registry gets nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILDKIT_CACHE_CONFIG, DOCKER_LIST, OCI_INDEX, OCI_MANIFEST } from '../../src/registry/media-types.js';
import { type Fetched, getManifest, sha256 } from '../support/blobs.js';
import { ALL_STEPS, OLD_HITS } from '../support/build-context.js';
import { cachedStepNames, exportedCacheDigest } from '../support/buildx.js';
import { type Builder, type CacheBed, requestsSince, startCacheBed } from '../support/cache-bed.js';
import { Cleanup } from '../support/cleanup.js';
import { startShimProcess } from '../support/regshim.js';

/** What BuildKit's cache resolver sends: it names an index. */
const RESOLVER_ACCEPT = `${OCI_MANIFEST}, ${OCI_INDEX}, */*`;
/** What a client that reads image manifests alone sends. */
const MANIFEST_ONLY = OCI_MANIFEST;
// Off switch of the made index (docs/configuration.md).
const NO_INDEX_FLAG = ['--image-manifest-as-index', 'off'];

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

const cleanup = new Cleanup();
let bed: CacheBed;
/** BuildKit 0.25 (Debian forky's dockerd 28.5.2). */
let newest: Builder;
const repo = 'team/app';
const tag = 'cache';
/** The bytes BuildKit 0.25 pushed under `tag`, as the registry holds them. */
let pushed: Buffer;

const shim = () => bed.upstreams['distribution 2.8'].shim;
const via = (host: string, t = tag) => `${host}/${repo}:${t}`;

beforeAll(async () => {
  bed = await startCacheBed(cleanup);
  newest = await bed.builder('forky');
  const exported = await newest.exportCache(bed.ctx, via(shim().host));
  expect(exported.code, exported.stderr).toBe(0);
  pushed = (await getManifest(bed.registry.url, repo, tag, { accept: MANIFEST_ONLY })).bytes;
  expect(sha256(pushed)).toBe(exportedCacheDigest(exported.stderr));
});

afterAll(() => cleanup.run());

interface Answer {
  status: number;
  type: string | null;
  digest: string | null;
  /** The body's digest. */
  bytes: string;
}

/**
 * Every answer regshim at `url` gives for the cache, `refs` in order, GET and HEAD, two
 * Accepts. Digests first: a replica that never read the tag must find them too.
 */
async function answers(url: string, refs: string[]): Promise<Record<string, Answer>> {
  const out: Record<string, Answer> = {};
  for (const ref of refs) {
    for (const accept of [RESOLVER_ACCEPT, MANIFEST_ONLY]) {
      for (const method of ['GET', 'HEAD'] as const) {
        const r: Fetched = await getManifest(url, repo, ref, { method, accept });
        out[`${method} ${ref} (${accept})`] = { status: r.status, type: r.headers.get('content-type'), digest: r.headers.get('docker-content-digest'), bytes: sha256(r.bytes) };
      }
    }
  }
  return out;
}

describe("the control: BuildKit 0.25's default export straight from distribution 2.8", () => {
  it('BuildKit 0.8 gets 0 of 6 steps cached: it ignores the image-manifest form without an error', async () => {
    const stored = JSON.parse(pushed.toString('utf8')) as { mediaType: string; config: Descriptor };
    expect(stored.mediaType).toBe(OCI_MANIFEST);
    expect(stored.config.mediaType).toBe(BUILDKIT_CACHE_CONFIG);
    expect(await bed.importByOld(via(bed.registry.host))).toEqual([]);
  });
});

describe("BuildKit 0.25's default export through regshim (default flags) in front of distribution 2.8", () => {
  it('is stored byte for byte; a client whose Accept names an index gets one made from it, others the manifest', async () => {
    const asManifest = await getManifest(shim().url, repo, tag, { accept: MANIFEST_ONLY });
    expect(asManifest.status).toBe(200);
    expect(asManifest.headers.get('content-type')).toBe(OCI_MANIFEST);
    expect(asManifest.bytes.equals(pushed)).toBe(true);
    expect(asManifest.headers.get('docker-content-digest')).toBe(sha256(pushed));

    const made = await getManifest(shim().url, repo, tag, { accept: RESOLVER_ACCEPT });
    expect(made.status).toBe(200);
    expect(made.headers.get('content-type')).toBe(OCI_INDEX);
    const digest = sha256(made.bytes);
    expect(made.headers.get('docker-content-digest')).toBe(digest);
    // The index BuildKit would have written: every layer, then the cacheconfig.
    const manifest = JSON.parse(pushed.toString('utf8')) as { config: Descriptor; layers: Descriptor[] };
    const index = JSON.parse(made.bytes.toString('utf8')) as { mediaType: string; manifests: Descriptor[] };
    expect(index.mediaType).toBe(OCI_INDEX);
    expect(index.manifests.map((d) => [d.mediaType, d.digest])).toEqual(
      [...manifest.layers, manifest.config].map((d) => [d.mediaType, d.digest]),
    );
    expect(manifest.layers).toHaveLength(6);

    const head = await getManifest(shim().url, repo, tag, { method: 'HEAD', accept: RESOLVER_ACCEPT });
    expect([head.status, head.headers.get('docker-content-digest'), head.headers.get('content-length')]).toEqual([200, digest, String(made.bytes.length)]);
    const byDigest = await getManifest(shim().url, repo, digest, { accept: RESOLVER_ACCEPT });
    expect(byDigest.status).toBe(200);
    expect(byDigest.bytes.equals(made.bytes)).toBe(true);
  });

  it('BuildKit 0.8 imports it with every COPY step cached (its RUN step reruns, as from 0.13 caches); 0.13 and 0.25 with every step', async () => {
    expect(await bed.importByOld(via(shim().host))).toEqual(OLD_HITS);
    expect(await bed.importCached(bed.ctx, via(shim().host))).toEqual(ALL_STEPS);
    expect(await newest.importCached(bed.ctx, via(shim().host))).toEqual(ALL_STEPS);
  });

  it('a re-export of the unchanged cache by the same BuildKit 0.25 builder writes nothing: one HEAD of the tag', async () => {
    const again = 'cache-again';
    const first = await newest.exportCache(bed.ctx, via(shim().host, again));
    expect(first.code, first.stderr).toBe(0);
    const mark = shim().logs.length;
    const rebuilt = await newest.bx.build(bed.ctx, ['--cache-to', `type=registry,ref=${via(shim().host, again)},mode=max`]);
    expect(rebuilt.code, rebuilt.stderr).toBe(0);
    expect(cachedStepNames(rebuilt.stderr)).toEqual(ALL_STEPS);
    // BuildKit HEADs the tag for the manifest it would write and finds its digest there.
    const seen = requestsSince(shim(), mark);
    expect(seen.filter((r) => !r.startsWith('HEAD '))).toEqual([]);
    expect(seen.filter((r) => r.startsWith(`HEAD ${again} `))).toEqual([`HEAD ${again} 200`]);
  });

  it('two regshim processes with no shared state answer every tag and digest the same; BuildKit 0.8 imports through either', async () => {
    const made = (await getManifest(shim().url, repo, tag, { accept: RESOLVER_ACCEPT })).headers.get('docker-content-digest') ?? 'missing';
    const refs = [made, sha256(pushed), tag];
    const [one, two] = await Promise.all([cleanup.track(startShimProcess(bed.registry.url)), cleanup.track(startShimProcess(bed.registry.url))]);
    const fromOne = await answers(one.url, refs);
    expect(await answers(two.url, refs)).toEqual(fromOne);
    expect(await answers(shim().url, refs)).toEqual(fromOne);
    // Every ref answers, but the made index goes only to clients that name the OCI index.
    const madeUnasked = `GET ${made} (${MANIFEST_ONLY})`;
    expect(Object.entries(fromOne).map(([k, a]) => [k, a.status])).toEqual(
      Object.keys(fromOne).map((k) => [k, k === madeUnasked || k === `HEAD${madeUnasked.slice(3)}` ? 404 : 200]),
    );
    expect(await bed.importByOld(via(two.host))).toEqual(OLD_HITS);
  });

  it(`with ${NO_INDEX_FLAG.join(' ')}, BuildKit 0.8 through regshim gets 0 cached again: the made index is what it reads`, async () => {
    const off = await cleanup.track(startShimProcess(bed.registry.url, NO_INDEX_FLAG));
    const got = await getManifest(off.url, repo, tag, { accept: RESOLVER_ACCEPT });
    expect(got.headers.get('content-type')).toBe(OCI_MANIFEST);
    expect(got.bytes.equals(pushed)).toBe(true);
    expect(await bed.importByOld(via(off.host))).toEqual([]);
  });
});

describe.each([
  { form: 'index', opts: ',image-manifest=false', mediaType: OCI_INDEX },
  { form: 'Docker list', opts: ',image-manifest=false,oci-mediatypes=false', mediaType: DOCKER_LIST },
])("BuildKit 0.25's $form form through regshim", ({ form, opts, mediaType }) => {
  it('is stored as an image manifest and served as pushed; 0.8 imports every COPY step, 0.13 and 0.25 every step', async () => {
    const formTag = `cache-${form.replace(' ', '-')}`;
    const exported = await newest.exportCache(bed.ctx, via(shim().host, formTag), opts);
    expect(exported.code, exported.stderr).toBe(0);
    const served = await getManifest(shim().url, repo, formTag, { accept: RESOLVER_ACCEPT });
    expect(served.headers.get('content-type')).toBe(mediaType);
    const stored = await getManifest(bed.registry.url, repo, formTag, { accept: MANIFEST_ONLY });
    expect(stored.headers.get('content-type')).toBe(OCI_MANIFEST);
    expect(shim().logs.some((l) => l.msg === 'cache index converted' && l.indexDigest === sha256(served.bytes))).toBe(true);
    expect(await bed.importByOld(via(shim().host, formTag))).toEqual(OLD_HITS);
    expect(await bed.importCached(bed.ctx, via(shim().host, formTag))).toEqual(ALL_STEPS);
    expect(await newest.importCached(bed.ctx, via(shim().host, formTag))).toEqual(ALL_STEPS);
  });
});

describe("after the registry's garbage collection", () => {
  /** The made index, as regshim answered before the collection. */
  let before: Fetched;

  beforeAll(async () => {
    before = await getManifest(shim().url, repo, tag, { accept: RESOLVER_ACCEPT });
    expect(before.headers.get('content-type')).toBe(OCI_INDEX);
    // Replaced by another cache, the first export's manifest is untagged: something to collect.
    const replaced = 'cache-replaced';
    for (const exported of [await newest.exportCache(bed.ctx, via(shim().host, replaced)), await bed.exportCache(bed.ctx, via(shim().host, replaced))]) {
      expect(exported.code, exported.stderr).toBe(0);
    }
    const gc = await bed.registry.collectGarbage();
    expect(gc.code, gc.stderr).toBe(0);
    expect(gc.stdout).toMatch(/eligible for deletion/);
  });

  it('a client that resolves the tag on one replica (which read it before) gets the made index by digest from another that never read the tag', async () => {
    const other = await cleanup.track(startShimProcess(bed.registry.url));
    expect((await getManifest(shim().url, repo, tag, { accept: RESOLVER_ACCEPT })).bytes.equals(before.bytes)).toBe(true);
    const byDigest = await getManifest(other.url, repo, sha256(before.bytes), { accept: RESOLVER_ACCEPT });
    expect(byDigest.status).toBe(200);
    expect(byDigest.bytes.equals(before.bytes)).toBe(true);
  });

  it('a fresh regshim (npx regshim, default flags) makes the same index from the registry alone: 0.8 gets every COPY cached, 0.13 and 0.25 every step', async () => {
    const fresh = await cleanup.track(startShimProcess(bed.registry.url));
    const made = await getManifest(fresh.url, repo, tag, { accept: RESOLVER_ACCEPT });
    expect(made.status).toBe(200);
    expect(made.bytes.equals(before.bytes)).toBe(true);
    const index = JSON.parse(made.bytes.toString('utf8')) as { manifests: Descriptor[] };
    const blobs = await Promise.all(index.manifests.map(async (d) => (await fetch(`${bed.registry.url}/v2/${repo}/blobs/${d.digest}`, { method: 'HEAD' })).status));
    expect(blobs).toEqual(index.manifests.map(() => 200));
    expect(await bed.importByOld(via(fresh.host))).toEqual(OLD_HITS);
    expect(await bed.importCached(bed.ctx, via(fresh.host))).toEqual(ALL_STEPS);
    expect(await newest.importCached(bed.ctx, via(fresh.host))).toEqual(ALL_STEPS);
  });
});
