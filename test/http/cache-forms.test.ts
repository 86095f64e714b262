// The stored forms over HTTP (Part 2: registries that allow-list media types), against the
// real registry behind the strict-gate SIMULATION's profiles: 'quay' (Red Hat Quay 3
// "Configuring artifact types" defaults, Pulp's "Configure Supported OCI Types") and 'gitlab'
// (the GitLab container registry's "Supported Media Types"), with an instrumented wire in
// front of the gate so upstream request counts are exact.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getManifest, pushBlobs, putManifest, sha256 } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { type CountingProxy, startCountingProxy } from '../support/counting-proxy.js';
import { type FixtureCache, fixtureCache } from '../support/oci-archive.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { type RunningShim, startShim } from '../support/regshim.js';
import { type GateProfile, type StrictGate, startStrictGate } from '../support/strict-gate.js';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const PUSHER_ACCEPT = `${OCI_MANIFEST}, */*`;

const cleanup = new Cleanup();
let registry: Registry;
let index: FixtureCache;
let dlist: FixtureCache;
let imgmanifest: FixtureCache;

beforeAll(async () => {
  registry = await cleanup.track(startRegistry());
  [index, dlist, imgmanifest] = await Promise.all([fixtureCache('index'), fixtureCache('dlist'), fixtureCache('imgmanifest')]);
});

afterAll(() => cleanup.run());

interface Bed {
  gate: StrictGate;
  wire: CountingProxy;
}

async function bed(profile: GateProfile, repos: string[]): Promise<Bed> {
  const gate = await cleanup.track(startStrictGate(registry.url, profile));
  const wire = await cleanup.track(startCountingProxy(gate.url));
  for (const repo of repos) await pushBlobs(registry.url, repo, index.blobs.values());
  return { gate, wire };
}

/** The wire's requests since the last take, as "METHOD path status", upload ids written <id>. */
function taken(wire: CountingProxy): string[] {
  const from = wire.requests.length - wire.take().length;
  return wire.requests.slice(from).map((r) => `${r.method} ${r.path.split('?')[0]!.replace(/\/uploads\/[0-9a-f-]+$/, '/uploads/<id>')} ${r.status}`);
}

async function metric(shim: RunningShim, name: string): Promise<number> {
  const text = await (await fetch(`${shim.url}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
}

interface StoredImage {
  config: { mediaType: string; digest: string };
  layers: { mediaType: string; digest: string; annotations?: Record<string, string> }[];
  annotations: Record<string, string>;
  artifactType?: string;
}

async function storedManifest(repo: string, tag: string): Promise<StoredImage> {
  const got = await getManifest(registry.url, repo, tag, { accept: OCI_MANIFEST });
  return JSON.parse(got.bytes.toString()) as StoredImage;
}

describe('the quay profile, regshim with default flags (--cache-form auto)', () => {
  let b: Bed;
  let shim: RunningShim;
  beforeAll(async () => {
    b = await bed('quay', ['quay/index', 'quay/list', 'quay/img', 'quay/gone']);
    shim = await cleanup.track(startShim(b.wire.url));
  });

  it('a first index PUT is refused in BuildKit’s form for its media types, sent again in the image form, stored: 201 with the index digest', async () => {
    b.wire.take();
    const put = await putManifest(shim.url, 'quay/index', 'cache', index.bytes, OCI_INDEX);
    expect([put.status, put.headers.get('docker-content-digest')]).toEqual([201, index.digest]);
    const stored = await storedManifest('quay/index', 'cache');
    const configDigest = stored.config.digest;
    expect(taken(b.wire)).toEqual([
      `HEAD /v2/quay/index/blobs/${index.digest} 404`,
      'POST /v2/quay/index/blobs/uploads/ 202',
      'PUT /v2/quay/index/blobs/uploads/<id> 201',
      'PUT /v2/quay/index/manifests/cache 400',
      `HEAD /v2/quay/index/blobs/${index.digest} 200`,
      `HEAD /v2/quay/index/blobs/${configDigest} 404`,
      'POST /v2/quay/index/blobs/uploads/ 202',
      'PUT /v2/quay/index/blobs/uploads/<id> 201',
      'PUT /v2/quay/index/manifests/cache 201',
    ]);
    expect(await metric(shim, 'regshim_cache_form_switches_total')).toBe(1);
    const switched = shim.logs.filter((l) => /caches are stored in the image form/.test(String(l.msg)));
    expect(switched).toHaveLength(1);
    expect(switched[0]).toMatchObject({ status: 400, reason: expect.stringMatching(/^manifest data does not match schema: 'application\/vnd.buildkit.cacheconfig.v0' is not one of/) });
  });

  it('stores an image the registry accepts: an image config, standard layer types, every blob referenced, no artifactType', async () => {
    const stored = await storedManifest('quay/index', 'cache');
    expect(stored.config.mediaType).toBe('application/vnd.oci.image.config.v1+json');
    expect(stored.artifactType).toBeUndefined();
    expect(stored.layers.map((l) => [l.mediaType, l.digest])).toEqual([
      ['application/vnd.oci.image.layer.v1.tar+gzip', [...index.blobs.keys()][0]],
      ['application/vnd.oci.image.layer.v1.tar+gzip', [...index.blobs.keys()][1]],
      ['application/vnd.oci.image.layer.v1.tar', [...index.blobs.keys()][2]], // the cacheconfig
      ['application/vnd.oci.image.layer.v1.tar', index.digest], // the bytes pushed
    ]);
    const config = JSON.parse(Buffer.from(await (await fetch(`${registry.url}/v2/quay/index/blobs/${stored.config.digest}`)).arrayBuffer()).toString()) as {
      rootfs: { type: string; diff_ids: string[] };
      history: { empty_layer?: boolean }[];
    };
    expect(config.rootfs.diff_ids).toEqual([
      stored.layers[0]!.annotations!['containerd.io/uncompressed'],
      stored.layers[1]!.annotations!['containerd.io/uncompressed'],
      stored.layers[2]!.digest,
      stored.layers[3]!.digest,
    ]);
    expect(config.history.filter((h) => h.empty_layer !== true)).toHaveLength(4);
  });

  it('the next PUT goes straight to the image form: the choice is kept for this upstream', async () => {
    b.wire.take();
    expect((await putManifest(shim.url, 'quay/list', 'cache', dlist.bytes, DOCKER_LIST)).status).toBe(201);
    expect(taken(b.wire).filter((r) => r.startsWith('PUT /v2/quay/list/manifests/'))).toEqual(['PUT /v2/quay/list/manifests/cache 201']);
    expect(await metric(shim, 'regshim_cache_form_switches_total')).toBe(1);
  });

  it('GET and HEAD give back the exact bytes pushed, by tag and by digest', async () => {
    for (const [repo, cache, type] of [['quay/index', index, OCI_INDEX], ['quay/list', dlist, DOCKER_LIST]] as const) {
      for (const ref of ['cache', cache.digest]) {
        const got = await getManifest(shim.url, repo, ref);
        expect([got.status, got.headers.get('content-type'), got.headers.get('docker-content-digest')]).toEqual([200, type, cache.digest]);
        expect(got.bytes.equals(cache.bytes)).toBe(true);
        const head = await getManifest(shim.url, repo, ref, { method: 'HEAD' });
        expect([head.status, head.headers.get('docker-content-digest'), head.headers.get('content-length')]).toEqual([200, cache.digest, String(cache.bytes.length)]);
      }
    }
  });

  it("BuildKit's default export (its image manifest) is stored in the image form; a pusher gets its own digest back, an importer the index made from it", async () => {
    const put = await putManifest(shim.url, 'quay/img', 'cache', imgmanifest.bytes, OCI_MANIFEST);
    expect([put.status, put.headers.get('docker-content-digest')]).toEqual([201, imgmanifest.digest]);
    const stored = await storedManifest('quay/img', 'cache');
    expect([stored.config.mediaType, stored.layers.at(-1)?.digest]).toEqual(['application/vnd.oci.image.config.v1+json', imgmanifest.digest]);
    const pusher = await getManifest(shim.url, 'quay/img', 'cache', { method: 'HEAD', accept: PUSHER_ACCEPT });
    expect([pusher.status, pusher.headers.get('content-type'), pusher.headers.get('docker-content-digest')]).toEqual([200, OCI_MANIFEST, imgmanifest.digest]);
    const importer = await getManifest(shim.url, 'quay/img', 'cache');
    expect([importer.status, importer.headers.get('content-type'), importer.headers.get('docker-content-digest')]).toEqual([200, OCI_INDEX, index.digest]);
    expect(importer.bytes.equals(index.bytes)).toBe(true);
    // and a pusher after an importer still gets its own digest: an unchanged re-export writes nothing
    const again = await getManifest(shim.url, 'quay/img', 'cache', { method: 'HEAD', accept: PUSHER_ACCEPT });
    expect(again.headers.get('docker-content-digest')).toBe(imgmanifest.digest);
    const byDigest = await getManifest(shim.url, 'quay/img', imgmanifest.digest, { accept: PUSHER_ACCEPT });
    expect(byDigest.bytes.equals(imgmanifest.bytes)).toBe(true);
    // A client that takes the OCI manifest alone gets the bytes pushed too, not the stored image.
    for (const ref of ['cache', imgmanifest.digest]) {
      const only = await getManifest(shim.url, 'quay/img', ref, { accept: OCI_MANIFEST });
      expect([only.status, only.headers.get('docker-content-digest'), sha256(only.bytes)], ref).toEqual([200, imgmanifest.digest, imgmanifest.digest]);
    }
  });
});

describe('the gitlab profile, --cache-form auto', () => {
  it("refuses regshim's own layer type: an index ends up in the image form; BuildKit's image manifest, which its table holds, is stored as pushed", async () => {
    const b = await bed('gitlab', ['gl/index', 'gl/img']);
    const first = await cleanup.track(startShim(b.wire.url));
    expect((await putManifest(first.url, 'gl/index', 'cache', index.bytes, OCI_INDEX)).status).toBe(201);
    expect(b.gate.reasons).toHaveLength(1);
    expect(JSON.parse(b.gate.reasons[0]!).errors[0].detail).toBe('unknown media type: application/vnd.regshim.buildkit.cache.index.v1+json');
    expect((await storedManifest('gl/index', 'cache')).config.mediaType).toBe('application/vnd.oci.image.config.v1+json');
    const got = await getManifest(first.url, 'gl/index', 'cache');
    expect(got.bytes.equals(index.bytes)).toBe(true);

    const other = await cleanup.track(startShim(b.wire.url));
    b.wire.take();
    const put = await putManifest(other.url, 'gl/img', 'cache', imgmanifest.bytes, OCI_MANIFEST);
    expect([put.status, put.headers.get('docker-content-digest')]).toEqual([201, imgmanifest.digest]);
    expect(taken(b.wire).filter((r) => r.includes('/manifests/'))).toEqual(['PUT /v2/gl/img/manifests/cache 201']);
    expect((await getManifest(registry.url, 'gl/img', 'cache', { accept: OCI_MANIFEST })).bytes.equals(imgmanifest.bytes)).toBe(true);
    // and the first regshim, which writes the image form now, reads it all the same
    const importer = await getManifest(first.url, 'gl/img', 'cache');
    expect([importer.headers.get('docker-content-digest'), importer.bytes.equals(index.bytes)]).toEqual([index.digest, true]);
  });
});

describe('refusals that are not about media types do not switch forms', () => {
  it('a missing blob (400 MANIFEST_BLOB_UNKNOWN) comes back unchanged, and the next PUT is in BuildKit’s form', async () => {
    const shim = await cleanup.track(startShim(registry.url));
    const res = await putManifest(shim.url, 'none/empty', 'cache', index.bytes, OCI_INDEX);
    expect([res.status, JSON.parse(res.bytes.toString()).errors[0].code]).toEqual([400, 'MANIFEST_BLOB_UNKNOWN']);
    expect(await metric(shim, 'regshim_cache_form_switches_total')).toBe(0);
    await pushBlobs(registry.url, 'none/full', index.blobs.values());
    expect((await putManifest(shim.url, 'none/full', 'cache', index.bytes, OCI_INDEX)).status).toBe(201);
    expect((await storedManifest('none/full', 'cache')).config.mediaType).toBe('application/vnd.buildkit.cacheconfig.v0');
  });

  it('--cache-form buildkit never switches: the registry’s refusal goes back to the client', async () => {
    const b = await bed('quay', ['fixed/bk']);
    const shim = await cleanup.track(startShim(b.wire.url, { cacheForm: 'buildkit' }));
    const res = await putManifest(shim.url, 'fixed/bk', 'cache', index.bytes, OCI_INDEX);
    expect([res.status, JSON.parse(res.bytes.toString()).errors[0].code]).toEqual([400, 'MANIFEST_INVALID']);
    expect(await metric(shim, 'regshim_cache_form_switches_total')).toBe(0);
  });
});

describe('either form is read in either mode', () => {
  it('a cache stored in the image form (--cache-form image) is read by a regshim in BuildKit’s form, and the other way round', async () => {
    await pushBlobs(registry.url, 'either/img', index.blobs.values());
    await pushBlobs(registry.url, 'either/bk', index.blobs.values());
    const imageWriter = await cleanup.track(startShim(registry.url, { cacheForm: 'image' }));
    const buildkitWriter = await cleanup.track(startShim(registry.url, { cacheForm: 'buildkit' }));
    expect((await putManifest(imageWriter.url, 'either/img', 'cache', index.bytes, OCI_INDEX)).status).toBe(201);
    expect((await putManifest(buildkitWriter.url, 'either/bk', 'cache', index.bytes, OCI_INDEX)).status).toBe(201);
    expect((await storedManifest('either/img', 'cache')).config.mediaType).toBe('application/vnd.oci.image.config.v1+json');
    expect((await storedManifest('either/bk', 'cache')).config.mediaType).toBe('application/vnd.buildkit.cacheconfig.v0');
    for (const [repo, mode] of [['either/img', 'buildkit'], ['either/bk', 'image']] as const) {
      const reader = await cleanup.track(startShim(registry.url, { cacheForm: mode }));
      for (const ref of ['cache', index.digest]) {
        const got = await getManifest(reader.url, repo, ref);
        expect([got.status, got.headers.get('docker-content-digest'), got.bytes.equals(index.bytes)]).toEqual([200, index.digest, true]);
      }
    }
  });
});
