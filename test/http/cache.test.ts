// Cache conversion over HTTP, against the real registry, with an instrumented wire in
// between so upstream request counts are exact.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { toImageManifest } from '../../src/cache/convert.js';
import { classifyManifest } from '../../src/cache/detect.js';
import { DEFAULT_INDEX_LAYER_MEDIA_TYPE } from '../../src/registry/media-types.js';
import { getManifest, pushBlob, pushBlobs, putManifest, sha256 } from '../support/blobs.js';
import { type CountingProxy, startCountingProxy } from '../support/counting-proxy.js';
import { type FixtureCache, fixtureCache } from '../support/oci-archive.js';
import { Cleanup } from '../support/cleanup.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { type RunningShim, startShim } from '../support/regshim.js';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

const cleanup = new Cleanup();
let registry: Registry;
let wire: CountingProxy;
let shim: RunningShim;
let index: FixtureCache;
let dlist: FixtureCache;
let manifestDigest: string;

function convertedDigest(bytes: Buffer): string {
  const d = classifyManifest(bytes, undefined);
  if (d.kind !== 'cache') throw new Error('not a cache');
  return toImageManifest(d.index, bytes, DEFAULT_INDEX_LAYER_MEDIA_TYPE).digest;
}

beforeAll(async () => {
  registry = await cleanup.track(startRegistry());
  wire = await cleanup.track(startCountingProxy(registry.url));
  shim = await cleanup.track(startShim(wire.url));
  index = await fixtureCache('index');
  dlist = await fixtureCache('dlist');
  manifestDigest = convertedDigest(index.bytes);
  for (const repo of ['team/first', 'team/app', 'team/list', 'team/digest', 'team/del', 'team/big', 'team/other']) {
    await pushBlobs(registry.url, repo, index.blobs.values());
  }
  // Every test that reads team/app:cache finds it pushed through this regshim, whichever runs first.
  const put = await putManifest(shim.url, 'team/app', 'cache', index.bytes, OCI_INDEX);
  if (put.status !== 201) throw new Error(`setting up team/app:cache: ${put.status} ${put.bytes.toString()}`);
});

afterAll(() => cleanup.run());

beforeEach(() => {
  wire.take();
});

describe('PUT of an index-style cache', () => {
  it('stores an OCI image manifest upstream and answers 201 with the index digest', async () => {
    const put = await putManifest(shim.url, 'team/first', 'cache', index.bytes, OCI_INDEX);
    expect(put.status).toBe(201);
    expect(put.headers.get('docker-content-digest')).toBe(index.digest);
    expect(put.headers.get('location')).toBe(`/v2/team/first/manifests/${index.digest}`);
    expect(wire.take()).toEqual([
      `HEAD /v2/team/first/blobs/${index.digest}`,
      'POST /v2/team/first/blobs/uploads/',
      `PUT /v2/team/first/blobs/uploads/${wire.requests.at(-2)?.path.split('/').pop()?.split('?')[0]}`,
      'PUT /v2/team/first/manifests/cache',
    ]);
    // Directly on the registry: an image manifest that references every cache blob.
    const direct = await getManifest(registry.url, 'team/first', 'cache', { accept: OCI_MANIFEST });
    expect(direct.status).toBe(200);
    expect(direct.headers.get('content-type')).toBe(OCI_MANIFEST);
    expect(direct.headers.get('docker-content-digest')).toBe(manifestDigest);
    const doc = JSON.parse(direct.bytes.toString()) as { config: { mediaType: string }; layers: { digest: string; mediaType: string }[] };
    expect(doc.config.mediaType).toBe('application/vnd.buildkit.cacheconfig.v0');
    expect(doc.layers.map((l) => l.mediaType)).toEqual([
      'application/vnd.oci.image.layer.v1.tar+gzip',
      'application/vnd.oci.image.layer.v1.tar+gzip',
      DEFAULT_INDEX_LAYER_MEDIA_TYPE,
    ]);
    // The index bytes themselves are a blob of the repository, unchanged.
    const blob = await fetch(`${registry.url}/v2/team/first/blobs/${index.digest}`);
    expect(Buffer.from(await blob.arrayBuffer()).equals(index.bytes)).toBe(true);
    const line = shim.logs.find((l) => l.msg === 'cache index converted' && l.repo === 'team/first');
    expect(line).toMatchObject({ repo: 'team/first', ref: 'cache', indexDigest: index.digest, manifestDigest, descriptors: 3, direction: 'in' });
  });

  it('answers HEAD by tag with the index headers, in one upstream request', async () => {
    const head = await getManifest(shim.url, 'team/app', 'cache', { method: 'HEAD', accept: `${OCI_INDEX}, */*` });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe(OCI_INDEX);
    expect(head.headers.get('docker-content-digest')).toBe(index.digest);
    expect(head.headers.get('content-length')).toBe(String(index.bytes.length));
    expect(wire.take()).toEqual(['HEAD /v2/team/app/manifests/cache']);
  });

  it('answers GET by tag with the exact index bytes, in one upstream request', async () => {
    const got = await getManifest(shim.url, 'team/app', 'cache');
    expect(got.status).toBe(200);
    expect(got.bytes.equals(index.bytes)).toBe(true);
    expect(got.headers.get('docker-content-digest')).toBe(index.digest);
    expect(got.headers.get('content-type')).toBe(OCI_INDEX);
    expect(wire.take()).toEqual(['GET /v2/team/app/manifests/cache']);
  });

  it('answers GET and HEAD by index digest with two upstream requests at once: the manifest and the index blob are there', async () => {
    const both = [`HEAD /v2/team/app/blobs/${index.digest}`, `HEAD /v2/team/app/manifests/${manifestDigest}`];
    const got = await getManifest(shim.url, 'team/app', index.digest, { accept: `${OCI_INDEX}, */*` });
    expect(got.status).toBe(200);
    expect(got.bytes.equals(index.bytes)).toBe(true);
    expect(wire.take().sort()).toEqual(both);
    const head = await getManifest(shim.url, 'team/app', index.digest, { method: 'HEAD' });
    expect([head.status, head.headers.get('content-length')]).toEqual([200, String(index.bytes.length)]);
    expect(wire.take().sort()).toEqual(both);
  });

  it('re-pushes an identical cache without uploading the index again', async () => {
    const put = await putManifest(shim.url, 'team/app', 'cache', index.bytes, OCI_INDEX);
    expect(put.status).toBe(201);
    expect(wire.take()).toEqual([`HEAD /v2/team/app/blobs/${index.digest}`, 'PUT /v2/team/app/manifests/cache']);
  });

  it('gives a client that takes no index the image-manifest form (what BuildKit >= 0.12 reads)', async () => {
    const got = await getManifest(shim.url, 'team/app', 'cache', { accept: OCI_MANIFEST });
    expect(got.status).toBe(200);
    expect(got.headers.get('content-type')).toBe(OCI_MANIFEST);
    expect(sha256(got.bytes)).toBe(manifestDigest);
  });

  it('gives the manifest itself when asked by the manifest digest', async () => {
    const got = await getManifest(shim.url, 'team/app', manifestDigest);
    expect(sha256(got.bytes)).toBe(manifestDigest);
  });

  it('restores a Docker-list cache as a Docker list', async () => {
    expect((await putManifest(shim.url, 'team/list', 'cache', dlist.bytes, DOCKER_LIST)).status).toBe(201);
    const got = await getManifest(shim.url, 'team/list', 'cache');
    expect(got.headers.get('content-type')).toBe(DOCKER_LIST);
    expect(got.bytes.equals(dlist.bytes)).toBe(true);
    expect(got.headers.get('docker-content-digest')).toBe(dlist.digest);
  });

  it('accepts a PUT by digest that matches, and refuses one that does not', async () => {
    const ok = await putManifest(shim.url, 'team/digest', index.digest, index.bytes, OCI_INDEX);
    expect(ok.status).toBe(201);
    expect(ok.headers.get('docker-content-digest')).toBe(index.digest);
    expect((await getManifest(registry.url, 'team/digest', manifestDigest, { accept: OCI_MANIFEST })).status).toBe(200);
    wire.take();
    const bad = await putManifest(shim.url, 'team/digest', `sha256:${'1'.repeat(64)}`, index.bytes, OCI_INDEX);
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.bytes.toString()).errors[0]).toMatchObject({ code: 'DIGEST_INVALID' });
    expect(wire.take()).toEqual([]);
  });
});

describe('a cold regshim (restart, or another replica)', () => {
  let cold: RunningShim;
  beforeEach(async () => {
    cold = await cleanup.track(startShim(wire.url));
    wire.take();
  });

  it('serves GET by tag from the registry alone: the manifest, then the index blob', async () => {
    const got = await getManifest(cold.url, 'team/app', 'cache');
    expect(got.bytes.equals(index.bytes)).toBe(true);
    expect(got.headers.get('docker-content-digest')).toBe(index.digest);
    expect(wire.take()).toEqual(['GET /v2/team/app/manifests/cache', `GET /v2/team/app/blobs/${index.digest}`]);
    await getManifest(cold.url, 'team/app', 'cache');
    expect(wire.take()).toEqual(['GET /v2/team/app/manifests/cache']);
  });

  it('serves HEAD by tag without fetching the index', async () => {
    const head = await getManifest(cold.url, 'team/app', 'cache', { method: 'HEAD' });
    expect(head.headers.get('docker-content-digest')).toBe(index.digest);
    expect(wire.take()).toEqual(['HEAD /v2/team/app/manifests/cache', `GET /v2/team/app/manifests/${manifestDigest}`]);
  });

  it('serves GET by index digest', async () => {
    const got = await getManifest(cold.url, 'team/app', index.digest);
    expect(got.status).toBe(200);
    expect(got.bytes.equals(index.bytes)).toBe(true);
    expect(got.headers.get('docker-content-digest')).toBe(index.digest);
  });

  it("resolves as BuildKit's importer does: HEAD by tag, then GET by index digest", async () => {
    const head = await getManifest(cold.url, 'team/app', 'cache', { method: 'HEAD' });
    expect(head.headers.get('docker-content-digest')).toBe(index.digest);
    wire.take();
    const got = await getManifest(cold.url, 'team/app', index.digest, { accept: `${OCI_INDEX}, */*` });
    expect(got.bytes.equals(index.bytes)).toBe(true);
    // the manifest that stands for the index is known from the HEAD: no 404 round trip
    expect(wire.take().sort()).toEqual([`GET /v2/team/app/blobs/${index.digest}`, `HEAD /v2/team/app/manifests/${manifestDigest}`]);
    await getManifest(cold.url, 'team/app', index.digest);
    expect(wire.take().sort()).toEqual([`HEAD /v2/team/app/blobs/${index.digest}`, `HEAD /v2/team/app/manifests/${manifestDigest}`]);
  });

  it('loads the index once for many concurrent misses', async () => {
    const all = await Promise.all(Array.from({ length: 8 }, () => getManifest(cold.url, 'team/app', 'cache')));
    expect(all.every((r) => r.bytes.equals(index.bytes))).toBe(true);
    const seen = wire.take();
    expect(seen.filter((r) => r.startsWith('GET /v2/team/app/blobs/'))).toHaveLength(1);
    expect(seen.filter((r) => r === 'GET /v2/team/app/manifests/cache')).toHaveLength(8);
  });
});

describe('bad input: a clear error, nothing reaches the upstream', () => {
  const CONFIG = 'application/vnd.buildkit.cacheconfig.v0';
  const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${'a'.repeat(64)}`, size: 1 };
  const config = { mediaType: CONFIG, digest: `sha256:${'b'.repeat(64)}`, size: 1 };
  const body = (manifests: unknown[]) => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }));

  it.each([
    ['invalid JSON', Buffer.from('{"schemaVersion":2,"manifests":['), /not valid JSON/],
    ['no cacheconfig', body([layer]), /found 0/],
    ['two cacheconfigs', body([layer, config, config]), /found 2/],
    ['a bad digest', body([{ ...layer, digest: 'sha256:nothex' }, config]), /digest "sha256:nothex"/],
    ['a negative size', body([{ ...layer, size: -5 }, config]), /size -5/],
    ['a fractional size', body([layer, { ...config, size: 0.5 }]), /size 0.5/],
  ])('%s is 400 MANIFEST_INVALID with a detail', async (_what, bytes, detail) => {
    const res = await putManifest(shim.url, 'team/bad', 'cache', bytes, OCI_INDEX);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/json');
    const error = JSON.parse(res.bytes.toString()).errors[0];
    expect(error.code).toBe('MANIFEST_INVALID');
    expect(error.detail).toMatch(detail);
    expect(wire.take()).toEqual([]);
  });

  it('a manifest over --max-manifest-bytes is 413', async () => {
    const res = await putManifest(shim.url, 'team/bad', 'big', Buffer.alloc(4 * 1024 * 1024 + 1, 32), OCI_INDEX);
    expect(res.status).toBe(413);
    expect(JSON.parse(res.bytes.toString()).errors[0].code).toBe('MANIFEST_TOO_LARGE');
    expect(wire.take()).toEqual([]);
  });

  it('missing blobs: the upstream refusal comes back unchanged, and the log names both digests', async () => {
    const res = await putManifest(shim.url, 'team/empty', 'cache', index.bytes, OCI_INDEX);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.bytes.toString()).errors[0].code).toBe('MANIFEST_BLOB_UNKNOWN');
    const line = shim.logs.find((l) => l.msg === 'upstream refused the converted manifest' && l.repo === 'team/empty');
    expect(line).toMatchObject({ indexDigest: index.digest, manifestDigest, status: 400 });
  });
});

describe('caches BuildKit will not import', () => {
  it('stores a cache whose cacheconfig is over 1 MiB, and warns and counts why', async () => {
    const bigConfig = Buffer.from(JSON.stringify({ layers: [], records: [], padding: 'x'.repeat(1100 * 1024) }));
    const bigDigest = await pushBlob(registry.url, 'team/big', bigConfig);
    const doc = JSON.parse(index.bytes.toString()) as { manifests: { mediaType: string; digest: string; size: number }[] };
    const cfg = doc.manifests.find((m) => m.mediaType === 'application/vnd.buildkit.cacheconfig.v0')!;
    cfg.digest = bigDigest;
    cfg.size = bigConfig.length;
    const res = await putManifest(shim.url, 'team/big', 'cache', Buffer.from(JSON.stringify(doc)), OCI_INDEX);
    expect(res.status).toBe(201);
    const warning = shim.logs.find((l) => l.repo === 'team/big' && typeof l.problem === 'string');
    expect(warning?.problem).toMatch(/cacheconfig is 1126\d+ bytes, over BuildKit's import limit of 1048576/);
    const metrics = await (await fetch(`${shim.url}/metrics`)).text();
    expect(metrics).toMatch(/^regshim_cache_over_import_limit_total 1$/m);
  });
});

describe('DELETE by index digest', () => {
  it('deletes the converted manifest and the index blob upstream', async () => {
    expect((await putManifest(shim.url, 'team/del', 'cache', index.bytes, OCI_INDEX)).status).toBe(201);
    wire.take();
    const res = await fetch(`${shim.url}/v2/team/del/manifests/${index.digest}`, { method: 'DELETE' });
    expect(res.status).toBe(202);
    expect(wire.take()).toEqual([`DELETE /v2/team/del/manifests/${manifestDigest}`, `DELETE /v2/team/del/blobs/${index.digest}`]);
    expect((await getManifest(shim.url, 'team/del', 'cache')).status).toBe(404);
    expect((await getManifest(shim.url, 'team/del', index.digest)).status).toBe(404);
    expect((await getManifest(registry.url, 'team/del', manifestDigest)).status).toBe(404);
  });
});

describe('everything else passes through byte for byte', () => {
  it.each(['imgmanifest', 'multi-arch'] as const)('%s', async (what) => {
    let bytes: Buffer;
    let type: string;
    if (what === 'imgmanifest') {
      const img = await fixtureCache('imgmanifest');
      bytes = img.bytes;
      type = OCI_MANIFEST;
    } else {
      const child = (await fixtureCache('imgmanifest')).bytes;
      await putManifest(registry.url, 'team/other', sha256(child), child, OCI_MANIFEST);
      bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: sha256(child), size: child.length, platform: { architecture: 'amd64', os: 'linux' } }] }));
      type = OCI_INDEX;
    }
    const put = await putManifest(shim.url, 'team/other', what, bytes, type);
    expect(put.status).toBe(201);
    expect(put.headers.get('docker-content-digest')).toBe(sha256(bytes));
    // As a pusher asks before a PUT: an importer gets BuildKit's image manifest as an index (made-index.test.ts).
    const via = await getManifest(shim.url, 'team/other', what, { accept: `${type}, */*` });
    const direct = await getManifest(registry.url, 'team/other', what, { accept: `${type}, */*` });
    expect(via.bytes.equals(bytes)).toBe(true);
    expect(direct.bytes.equals(bytes)).toBe(true);
    expect(via.headers.get('content-type')).toBe(type);
  });
});

describe('credentials and challenges', () => {
  let authed: Registry;
  let gate: RunningShim;
  beforeAll(async () => {
    authed = await cleanup.track(startRegistry({ sillyAuth: true }));
    gate = await cleanup.track(startShim(authed.url));
    await pushBlobs(authed.url, 'team/auth', index.blobs.values(), { authorization: 'Bearer t' });
  });

  it('passes the challenge back unchanged, then converts with the credentials', async () => {
    const direct = await putManifest(authed.url, 'team/auth', 'cache', index.bytes, OCI_INDEX);
    const refused = await putManifest(gate.url, 'team/auth', 'cache', index.bytes, OCI_INDEX);
    expect(refused.status).toBe(401);
    expect(refused.headers.get("www-authenticate")).toBe(direct.headers.get("www-authenticate"));
    expect(refused.headers.get('www-authenticate')).toMatch(/^Bearer realm="https:\/\/auth.example.test\/token",service="regshim-test"/);
    const ok = await putManifest(gate.url, 'team/auth', 'cache', index.bytes, OCI_INDEX, { authorization: 'Bearer t' });
    expect(ok.status).toBe(201);
  });

  it('still asks the upstream when the index is in memory: no credentials, no cache', async () => {
    const anon = await getManifest(gate.url, 'team/auth', index.digest);
    expect(anon.status).toBe(401);
    expect(anon.headers.get('www-authenticate')).toMatch(/^Bearer /);
    const byTag = await getManifest(gate.url, 'team/auth', 'cache');
    expect(byTag.status).toBe(401);
    const ok = await getManifest(gate.url, 'team/auth', index.digest, { headers: { authorization: 'Bearer t' } });
    expect(ok.status).toBe(200);
    expect(ok.bytes.equals(index.bytes)).toBe(true);
  });
});

describe('an upstream that refuses the converted manifest', () => {
  let strictPolicy: Registry;
  let front: RunningShim;
  beforeAll(async () => {
    strictPolicy = await cleanup.track(startRegistry({ policyImageOnly: true }));
    front = await cleanup.track(startShim(strictPolicy.url));
    await pushBlobs(strictPolicy.url, 'team/policy', index.blobs.values());
  });

  it('gives the client its answer unchanged', async () => {
    const res = await putManifest(front.url, 'team/policy', 'cache', index.bytes, OCI_INDEX);
    expect(res.status).toBe(403);
    expect(JSON.parse(res.bytes.toString()).errors[0].code).toBe('DENIED');
  });
});
