// BuildKit 0.13 (dockerd 26's, driven by buildx 0.13) exports its registry cache through
// regshim in every form it writes; BuildKit 0.13 and dockerd 20.10's BuildKit 0.8 import it
// back. Against the real registry and against the strict-registry simulation in front of it.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { indexOfBuildkitManifest } from '../../src/cache/forms/made-index.js';
import { getManifest, sha256 } from '../support/blobs.js';
import { ALL_STEPS, OLD_HITS, STEPS, writeBuildContext } from '../support/build-context.js';
import { cachedStepNames, tiniStatic } from '../support/buildx.js';
import { type CacheBed, UPSTREAMS, requestsSince, startCacheBed } from '../support/cache-bed.js';
import { Cleanup } from '../support/cleanup.js';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const CACHE_CONFIG = 'application/vnd.buildkit.cacheconfig.v0';
const INDEX_LAYER = 'application/vnd.regshim.buildkit.cache.index.v1+json';

/**
 * The three forms BuildKit 0.13 writes, the `--cache-to` options that choose each, and what
 * BuildKit 0.8 gets from each. It reads no image-manifest form, silently: through regshim it
 * gets the index made from it.
 */
const FORMS = [
  { form: 'index', opts: '', mediaType: OCI_INDEX, converted: true, oldHits: OLD_HITS },
  { form: 'Docker list', opts: ',oci-mediatypes=false', mediaType: DOCKER_LIST, converted: true, oldHits: OLD_HITS },
  { form: 'image manifest', opts: ',image-manifest=true,oci-mediatypes=true', mediaType: OCI_INDEX, converted: false, oldHits: OLD_HITS },
] as const;

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}
interface Stored {
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

const cleanup = new Cleanup();
let bed: CacheBed;

beforeAll(async () => {
  bed = await startCacheBed(cleanup);
});

afterAll(() => cleanup.run());

const tagOf = (form: string) => `cache-${form.replace(' ', '-')}`;

// Every export starts from an empty builder: after an import, BuildKit 0.13 holds the
// imported steps as lazy references to remote layers it never pulled, and a later export
// leaves those records out (two layers instead of six, seen here).
describe.each(UPSTREAMS)('through regshim in front of %s', (name) => {
  const up = () => bed.upstreams[name];
  const ref = (tag: string) => `${up().shim.host}/${up().repo}:${tag}`;

  it.each(FORMS)('$form form: exported, stored as an image manifest; 0.13 imports every step, 0.8 what it can', async ({ form, opts, mediaType, converted, oldHits }) => {
    const tag = tagOf(form);
    const exported = await bed.exportCache(bed.ctx, ref(tag), opts);
    expect(exported.code, exported.stderr).toBe(0);

    // Clients get the form BuildKit wrote, under the digest of its bytes.
    const served = await getManifest(up().shim.url, up().repo, tag);
    expect(served.status).toBe(200);
    expect(served.headers.get('content-type')).toBe(mediaType);
    const digest = sha256(served.bytes);
    expect(served.headers.get('docker-content-digest')).toBe(digest);

    // The registry holds an OCI image manifest whose config is the cacheconfig.
    const direct = await getManifest(bed.registry.url, up().repo, tag, { accept: OCI_MANIFEST });
    expect(direct.status).toBe(200);
    const stored = JSON.parse(direct.bytes.toString('utf8')) as Stored;
    expect(stored.mediaType).toBe(OCI_MANIFEST);
    expect(stored.config.mediaType).toBe(CACHE_CONFIG);
    if (converted) {
      const index = JSON.parse(served.bytes.toString('utf8')) as { manifests: Descriptor[] };
      const blobs = index.manifests.filter((d) => d.mediaType !== CACHE_CONFIG);
      // Six steps make six layers: more than the two of the ctr fixture.
      expect(blobs).toHaveLength(6);
      expect(stored.layers.map((l) => l.digest)).toEqual([...blobs.map((b) => b.digest), digest]);
      expect(stored.layers.at(-1)?.mediaType).toBe(INDEX_LAYER);
      expect(stored.annotations?.['dev.regshim.cache.index.digest']).toBe(digest);
      expect(up().shim.logs.some((l) => l.msg === 'cache index converted' && l.indexDigest === digest)).toBe(true);
    } else {
      // Stored as BuildKit wrote it; an importer gets the index made from it.
      expect(indexOfBuildkitManifest(direct.bytes)?.bytes.equals(served.bytes)).toBe(true);
      expect(stored.layers).toHaveLength(6);
    }

    expect(await bed.importCached(bed.ctx, ref(tag))).toEqual(ALL_STEPS);
    expect(await bed.importByOld(ref(tag))).toEqual(oldHits);
  });

  it('after a change to one source file, the steps before it come cached and the rest rebuild', async () => {
    const tag = 'cache-change';
    const exported = await bed.exportCache(bed.ctx, ref(tag));
    expect(exported.code, exported.stderr).toBe(0);
    const changed = await writeBuildContext(join(bed.workDir, `ctx-changed-${up().repo.replace('/', '-')}`), tiniStatic(), { app: 'app v2\n' });
    expect(await bed.importCached(changed, ref(tag))).toEqual([STEPS.tini, STEPS.base].sort());
  });

  it('re-export of an unchanged build: the same builder writes the same bytes and nothing is PUT; a CI run writes where each layer came from', async () => {
    const tag = 'cache-again';
    const first = await bed.exportCache(bed.ctx, ref(tag));
    expect(first.code, first.stderr).toBe(0);
    const before = await getManifest(up().shim.url, up().repo, tag);

    let mark = up().shim.logs.length;
    const again = await bed.bx.build(bed.ctx, ['--cache-to', `type=registry,ref=${ref(tag)},mode=max`]);
    expect(again.code, again.stderr).toBe(0);
    expect(cachedStepNames(again.stderr)).toEqual(ALL_STEPS);
    // BuildKit HEADs the tag, gets the digest of the bytes it would write, and stops.
    const seen = requestsSince(up().shim, mark);
    expect(seen.filter((r) => !r.startsWith('HEAD '))).toEqual([]);
    expect(seen).toContain(`HEAD ${tag} 200`);
    expect(up().shim.logs.slice(mark).filter((l) => l.msg === 'cache index converted')).toEqual([]);
    expect((await getManifest(up().shim.url, up().repo, tag)).bytes.equals(before.bytes)).toBe(true);

    // A CI run: an empty builder, --cache-from and --cache-to on one ref.
    await bed.bx.forgetLocal();
    mark = up().shim.logs.length;
    const ci = await bed.bx.build(bed.ctx, ['--cache-from', `type=registry,ref=${ref(tag)}`, '--cache-to', `type=registry,ref=${ref(tag)},mode=max`]);
    expect(ci.code, ci.stderr).toBe(0);
    expect(cachedStepNames(ci.stderr)).toEqual(ALL_STEPS);
    const after = await getManifest(up().shim.url, up().repo, tag);
    expect(after.bytes.equals(before.bytes)).toBe(false);
    // The only difference: containerd's annotations naming the registry and repository
    // each layer was imported from. Same layers, same cacheconfig, same timestamps.
    expect(withoutSourceAnnotations(after.bytes)).toEqual(withoutSourceAnnotations(before.bytes));
    // So BuildKit PUTs the new index, and regshim stores it upstream as a new manifest.
    expect(requestsSince(up().shim, mark).filter((r) => r.startsWith(`PUT ${tag} `))).toEqual([`PUT ${tag} 201`]);
    const stored = up().shim.logs.slice(mark).filter((l) => l.msg === 'cache index converted').map((l) => l.indexDigest);
    expect(stored).toEqual([sha256(after.bytes)]);
  });
});

/** A cache index with every `containerd.io/distribution.source.*` annotation dropped. */
function withoutSourceAnnotations(bytes: Buffer): unknown {
  const index = JSON.parse(bytes.toString('utf8')) as { manifests: { annotations?: Record<string, string> }[] };
  for (const d of index.manifests) {
    if (d.annotations) d.annotations = Object.fromEntries(Object.entries(d.annotations).filter(([k]) => !k.startsWith('containerd.io/distribution.source.')));
  }
  return index;
}

describe('the control: BuildKit 0.13 straight to the strict-registry simulation', () => {
  it.each(FORMS.filter((f) => f.converted))('$form form: the export is refused', async ({ form, opts }) => {
    const path = `/v2/control/app/manifests/${tagOf(form)}`;
    const exported = await bed.exportCache(bed.ctx, `${bed.gate.host}/control/app:${tagOf(form)}`, opts);
    expect(exported.code).not.toBe(0);
    expect(exported.stderr).toMatch(/400 Bad Request/);
    expect(bed.gate.refused).toContain(path);
  });
});
