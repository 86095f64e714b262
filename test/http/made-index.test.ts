// BuildKit's own image-manifest cache (BuildKit >= 0.21's default export) read as an index by
// importers that ask for one (BuildKit < 0.12 reads no other form), against the real
// registry with an instrumented wire, so upstream request counts are exact.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type AuthedUpstream, startAuthedUpstream } from '../support/auth-upstream.js';
import { getManifest, pushBlobs, putManifest, sha256 } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { type CountingProxy, startCountingProxy } from '../support/counting-proxy.js';
import { type FixtureCache, fixtureCache } from '../support/oci-archive.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { type RunningShim, startShim } from '../support/regshim.js';
import { startStrictGate } from '../support/strict-gate.js';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
// containerd's pusher, before a PUT (remotes/docker/pusher.go): its own type and the wildcard.
const PUSHER_ACCEPT = `${OCI_MANIFEST}, */*`;

const cleanup = new Cleanup();
let registry: Registry;
let wire: CountingProxy;
let shim: RunningShim;
let manifest: FixtureCache; // BuildKit's image-manifest form of the fixture cache
let index: FixtureCache; // the index form BuildKit wrote for the same build

beforeAll(async () => {
  registry = await cleanup.track(startRegistry());
  wire = await cleanup.track(startCountingProxy(registry.url));
  shim = await cleanup.track(startShim(wire.url));
  manifest = await fixtureCache('imgmanifest');
  index = await fixtureCache('index');
  for (const repo of ['made/app', 'made/direct', 'made/off', 'made/gc']) await pushBlobs(registry.url, repo, manifest.blobs.values());
  const put = await putManifest(shim.url, 'made/app', 'cache', manifest.bytes, OCI_MANIFEST);
  if (put.status !== 201) throw new Error(`setting up made/app:cache: ${put.status} ${put.bytes.toString()}`);
});

afterAll(() => cleanup.run());

beforeEach(() => {
  wire.take();
});

/** The wire's requests since the last take, upload ids written <id>. */
function taken(): string[] {
  return wire.take().map((r) => r.replace(/\/uploads\/[0-9a-f-]+$/, '/uploads/<id>'));
}

async function metric(target: RunningShim, result: string): Promise<number> {
  const text = await (await fetch(`${target.url}/metrics`)).text();
  return Number(new RegExp(`^regshim_made_index_blobs_total\\{result="${result}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
}

describe('a PUT of BuildKit’s image-manifest cache', () => {
  it('stores the index made from it as a blob first, then passes the manifest through unchanged', async () => {
    const put = await putManifest(shim.url, 'made/direct', 'cache', manifest.bytes, OCI_MANIFEST);
    expect([put.status, put.headers.get('docker-content-digest')]).toEqual([201, manifest.digest]);
    expect(taken()).toEqual([
      `HEAD /v2/made/direct/blobs/${index.digest}`,
      'POST /v2/made/direct/blobs/uploads/',
      'PUT /v2/made/direct/blobs/uploads/<id>',
      'PUT /v2/made/direct/manifests/cache',
    ]);
    const direct = await getManifest(registry.url, 'made/direct', 'cache', { accept: OCI_MANIFEST });
    expect(direct.bytes.equals(manifest.bytes)).toBe(true);
    const blob = await fetch(`${registry.url}/v2/made/direct/blobs/${index.digest}`);
    expect(Buffer.from(await blob.arrayBuffer()).equals(index.bytes)).toBe(true);
  });
});

describe('reading it back through the regshim that stored it', () => {
  it('an importer (BuildKit’s resolver Accept) resolving the tag gets the index: the tag, and a look at the made index blob', async () => {
    const head = await getManifest(shim.url, 'made/app', 'cache', { method: 'HEAD' });
    expect([head.status, head.headers.get('content-type'), head.headers.get('docker-content-digest'), head.headers.get('content-length')]).toEqual([
      200,
      OCI_INDEX,
      index.digest,
      String(index.bytes.length),
    ]);
    // The blob is looked at on every read: a garbage collection may have removed it.
    expect(wire.take()).toEqual(['HEAD /v2/made/app/manifests/cache', `HEAD /v2/made/app/blobs/${index.digest}`]);
  });

  it('GET by tag and by the index digest give the index BuildKit writes for the same build, byte for byte', async () => {
    const byTag = await getManifest(shim.url, 'made/app', 'cache');
    expect(byTag.bytes.equals(index.bytes)).toBe(true);
    expect(wire.take()).toEqual(['GET /v2/made/app/manifests/cache', `HEAD /v2/made/app/blobs/${index.digest}`]);
    const byDigest = await getManifest(shim.url, 'made/app', index.digest, { accept: `${OCI_INDEX}, */*` });
    expect([byDigest.status, byDigest.headers.get('docker-content-digest')]).toEqual([200, index.digest]);
    expect(byDigest.bytes.equals(index.bytes)).toBe(true);
    // the index is made from the manifest: its existence is asked, the blob is not
    expect(wire.take()).toEqual([`HEAD /v2/made/app/manifests/${manifest.digest}`]);
  });

  it.each([PUSHER_ACCEPT, '*/*', OCI_MANIFEST])('a pusher’s HEAD (Accept %s) gets the manifest digest: an unchanged re-export writes nothing', async (accept) => {
    const head = await getManifest(shim.url, 'made/app', 'cache', { method: 'HEAD', accept });
    expect([head.status, head.headers.get('content-type'), head.headers.get('docker-content-digest')]).toEqual([200, OCI_MANIFEST, manifest.digest]);
    const got = await getManifest(shim.url, 'made/app', 'cache', { accept });
    expect(got.bytes.equals(manifest.bytes)).toBe(true);
  });

  it('the made index by its digest, to a client that takes only the OCI manifest: 404, as the registry answers, warm or cold', async () => {
    const cold = await cleanup.track(startShim(registry.url));
    for (const front of [shim, cold]) {
      const got = await getManifest(front.url, 'made/app', index.digest, { accept: OCI_MANIFEST });
      expect(got.status).toBe(404);
    }
  });

  it('the manifest by its own digest is the manifest', async () => {
    const got = await getManifest(shim.url, 'made/app', manifest.digest);
    expect([got.status, got.headers.get('content-type')]).toEqual([200, OCI_MANIFEST]);
    expect(got.bytes.equals(manifest.bytes)).toBe(true);
  });
});

describe('a cache pushed straight to the registry, read by a fresh regshim', () => {
  beforeAll(async () => {
    expect((await putManifest(registry.url, 'made/gc', 'cache', manifest.bytes, OCI_MANIFEST)).status).toBe(201);
  });

  it('resolving the tag makes the index and stores it as a blob once; the next resolve finds it there', async () => {
    const fresh = await cleanup.track(startShim(wire.url));
    wire.take();
    const head = await getManifest(fresh.url, 'made/gc', 'cache', { method: 'HEAD' });
    expect(head.headers.get('docker-content-digest')).toBe(index.digest);
    expect(taken()).toEqual([
      'HEAD /v2/made/gc/manifests/cache',
      `GET /v2/made/gc/manifests/${manifest.digest}`,
      `HEAD /v2/made/gc/blobs/${index.digest}`,
      'POST /v2/made/gc/blobs/uploads/',
      'PUT /v2/made/gc/blobs/uploads/<id>',
    ]);
    expect(await metric(fresh, 'stored')).toBe(1);
    await getManifest(fresh.url, 'made/gc', 'cache', { method: 'HEAD' });
    expect(wire.take()).toEqual(['HEAD /v2/made/gc/manifests/cache', `HEAD /v2/made/gc/blobs/${index.digest}`]);
    expect(await metric(fresh, 'stored')).toBe(1);
  });

  it('after the registry’s garbage collection removed the unreferenced blob, the tag still gives the index and stores the blob again', async () => {
    expect((await registry.collectGarbage()).code).toBe(0);
    expect((await fetch(`${registry.url}/v2/made/gc/blobs/${index.digest}`, { method: 'HEAD' })).status).toBe(404);
    const fresh = await cleanup.track(startShim(wire.url));
    const got = await getManifest(fresh.url, 'made/gc', 'cache');
    expect(got.bytes.equals(index.bytes)).toBe(true);
    expect((await fetch(`${registry.url}/v2/made/gc/blobs/${index.digest}`, { method: 'HEAD' })).status).toBe(200);
  });
});

describe('with --image-manifest-as-index off', () => {
  it('every client gets the manifest, as the registry has it, and nothing is stored', async () => {
    const off = await cleanup.track(startShim(wire.url, { imageManifestAsIndex: 'off' }));
    const put = await putManifest(off.url, 'made/off', 'cache', manifest.bytes, OCI_MANIFEST);
    expect(put.status).toBe(201);
    expect(wire.take()).toEqual(['PUT /v2/made/off/manifests/cache']);
    const head = await getManifest(off.url, 'made/off', 'cache', { method: 'HEAD' });
    expect([head.headers.get('content-type'), head.headers.get('docker-content-digest')]).toEqual([OCI_MANIFEST, manifest.digest]);
  });
});

describe('a strict registry, which serves no blob as a manifest: any replica finds the index by digest through its blob', () => {
  it('a replica that never read the tag answers by the index digest, GET and HEAD', async () => {
    const gate = await cleanup.track(startStrictGate(registry.url));
    const writer = await cleanup.track(startShim(gate.url));
    await pushBlobs(registry.url, 'made/strict', manifest.blobs.values());
    expect((await putManifest(writer.url, 'made/strict', 'cache', manifest.bytes, OCI_MANIFEST)).status).toBe(201);
    const reader = await cleanup.track(startShim(gate.url));
    const got = await getManifest(reader.url, 'made/strict', index.digest, { accept: `${OCI_INDEX}, */*` });
    expect([got.status, got.headers.get('content-type'), got.headers.get('docker-content-digest')]).toEqual([200, OCI_INDEX, index.digest]);
    expect(got.bytes.equals(index.bytes)).toBe(true);
    const head = await getManifest((await cleanup.track(startShim(gate.url))).url, 'made/strict', index.digest, { method: 'HEAD' });
    expect([head.status, head.headers.get('docker-content-digest')]).toEqual([200, index.digest]);
  });
});

describe('credentials for the made index blob', () => {
  let up: AuthedUpstream;
  const repo = 'made/auth';
  const token = async (actions: string) => {
    const res = await fetch(`${up.tokens!.realm}?service=${up.tokens!.service}&scope=repository:${repo}:${actions}`, {
      headers: { authorization: `Basic ${Buffer.from(`${up.username}:${up.password}`).toString('base64')}` },
    });
    return { authorization: `Bearer ${((await res.json()) as { token: string }).token}` };
  };

  beforeAll(async () => {
    const dir = await cleanup.tempDir('regshim-made-auth-');
    up = await cleanup.track(startAuthedUpstream('token', dir, 300));
    const push = await token('pull,push');
    await pushBlobs(up.registry.url, repo, manifest.blobs.values(), push);
    expect((await putManifest(up.registry.url, repo, 'cache', manifest.bytes, OCI_MANIFEST, push)).status).toBe(201);
  });

  it('a pull-only client gets the index by tag; the blob cannot be stored, which is counted; by digest only that replica answers', async () => {
    const pull = await token('pull');
    const reader = await cleanup.track(startShim(up.registry.url));
    const head = await getManifest(reader.url, repo, 'cache', { method: 'HEAD', headers: pull });
    expect([head.status, head.headers.get('docker-content-digest')]).toEqual([200, index.digest]);
    expect([await metric(reader, 'refused'), await metric(reader, 'stored')]).toEqual([1, 0]);
    expect(reader.logs.find((l) => l.indexDigest === index.digest && /not stored as a blob/.test(String(l.msg)))).toMatchObject({ refusal: 'upstream answered 401' });
    // resolved again: no second attempt, no second warning, for a while
    await getManifest(reader.url, repo, 'cache', { method: 'HEAD', headers: pull });
    expect(await metric(reader, 'refused')).toBe(1);
    const same = await getManifest(reader.url, repo, index.digest, { headers: pull });
    expect(same.bytes.equals(index.bytes)).toBe(true);
    const other = await cleanup.track(startShim(up.registry.url));
    const elsewhere = await getManifest(other.url, repo, index.digest, { headers: pull });
    expect([elsewhere.status, (JSON.parse(elsewhere.bytes.toString()) as { errors: { code: string }[] }).errors[0]?.code]).toEqual([404, 'MANIFEST_UNKNOWN']);
  });

  it('a pull-only client through a regshim that holds push credentials of its own: the blob is stored, and every replica answers by digest', async () => {
    const dir = await cleanup.tempDir('regshim-made-pw-');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(`${dir}/password`, up.password);
    const own = { upstreamUsername: up.username, upstreamPasswordFile: `${dir}/password` };
    const reader = await cleanup.track(startShim(up.registry.url, own));
    const head = await getManifest(reader.url, repo, 'cache', { method: 'HEAD' });
    expect([head.status, head.headers.get('docker-content-digest')]).toEqual([200, index.digest]);
    expect(await metric(reader, 'stored')).toBe(1);
    const other = await cleanup.track(startShim(up.registry.url));
    const got = await getManifest(other.url, repo, index.digest, { headers: await token('pull') });
    expect([got.status, sha256(got.bytes)]).toEqual([200, index.digest]);
  });
});
