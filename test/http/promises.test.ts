// What the README and docs/ promise about caches the registry changes behind regshim's back, and
// about what regshim exports: each promise against the real registry (distribution 2.8).
import { readFileSync, readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toImageManifest } from '../../src/cache/convert.js';
import { classifyManifest } from '../../src/cache/detect.js';
import { DEFAULT_INDEX_LAYER_MEDIA_TYPE } from '../../src/registry/media-types.js';
import { getManifest, pushBlobs, putManifest, sha256 } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { type FixtureCache, fixtureCache } from '../support/oci-archive.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { type RunningShim, startShim } from '../support/regshim.js';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

const cleanup = new Cleanup();
let registry: Registry;
let shim: RunningShim;
let fixture: FixtureCache;

beforeAll(async () => {
  registry = await cleanup.track(startRegistry());
  shim = await cleanup.track(startShim(registry.url));
  fixture = await fixtureCache('index');
});

afterAll(() => cleanup.run());

/** The fixture cache with a top-level annotation of its own: same blobs, new index digest. */
function variant(name: string): { bytes: Buffer; digest: string; manifestDigest: string } {
  const doc = JSON.parse(fixture.bytes.toString('utf8')) as Record<string, unknown>;
  const bytes = Buffer.from(JSON.stringify({ ...doc, annotations: { 'test.regshim.variant': name } }));
  const detection = classifyManifest(bytes, undefined);
  if (detection.kind !== 'cache') throw new Error(`variant ${name} is not a cache`);
  return { bytes, digest: sha256(bytes), manifestDigest: toImageManifest(detection.index, bytes, DEFAULT_INDEX_LAYER_MEDIA_TYPE).digest };
}

/** A repository holding the fixture's blobs and, under `cache`, the given cache pushed through regshim. */
async function pushedCache(repo: string, cache: { bytes: Buffer }, through: RunningShim = shim): Promise<void> {
  await pushBlobs(registry.url, repo, fixture.blobs.values());
  const put = await putManifest(through.url, repo, 'cache', cache.bytes, OCI_INDEX);
  if (put.status !== 201) throw new Error(`PUT ${repo}:cache: ${put.status} ${put.bytes.toString()}`);
}

function errorCode(bytes: Buffer): unknown {
  return (JSON.parse(bytes.toString('utf8')) as { errors: { code: string }[] }).errors[0]?.code;
}

describe('the registry stays the source of truth', () => {
  it("a manifest deleted upstream gets the registry's own answer, from a replica that holds the index as from one that never saw it", async () => {
    const cache = variant('deleted');
    await pushedCache('promise/deleted', cache);
    // Warm: the index is in regshim's memory.
    expect((await getManifest(shim.url, 'promise/deleted', cache.digest)).bytes.equals(cache.bytes)).toBe(true);
    const del = await fetch(`${registry.url}/v2/promise/deleted/manifests/${cache.manifestDigest}`, { method: 'DELETE' });
    expect(del.status).toBe(202);
    const cold = await cleanup.track(startShim(registry.url));
    const answer = async (base: string, method: 'GET' | 'HEAD', ref: string) => {
      const res = await getManifest(base, 'promise/deleted', ref, { method });
      return `${res.status} ${method === 'GET' && res.status === 404 ? String(errorCode(res.bytes)) : ''}`;
    };
    for (const method of ['GET', 'HEAD'] as const) {
      // By tag: gone, as the registry says.
      expect(await answer(shim.url, method, 'cache')).toBe(`404 ${method === 'GET' ? 'MANIFEST_UNKNOWN' : ''}`);
      expect(await answer(cold.url, method, 'cache')).toBe(`404 ${method === 'GET' ? 'MANIFEST_UNKNOWN' : ''}`);
      // By index digest: whatever the registry answers for that URL itself (distribution 2.8
      // serves any blob of the repository there), the same from both replicas.
      const direct = await answer(registry.url, method, cache.digest);
      expect(await answer(shim.url, method, cache.digest)).toBe(direct);
      expect(await answer(cold.url, method, cache.digest)).toBe(direct);
    }
  });

  it('a tag moved by another push serves the new bytes', async () => {
    const first = variant('moved-1');
    const second = variant('moved-2');
    await pushedCache('promise/moved', first);
    expect((await getManifest(shim.url, 'promise/moved', 'cache')).bytes.equals(first.bytes)).toBe(true);
    // Another replica moves the tag.
    const other = await cleanup.track(startShim(registry.url));
    expect((await putManifest(other.url, 'promise/moved', 'cache', second.bytes, OCI_INDEX)).status).toBe(201);
    const got = await getManifest(shim.url, 'promise/moved', 'cache');
    expect(got.bytes.equals(second.bytes)).toBe(true);
    expect(got.headers.get('docker-content-digest')).toBe(second.digest);
    const head = await getManifest(shim.url, 'promise/moved', 'cache', { method: 'HEAD' });
    expect(head.headers.get('docker-content-digest')).toBe(second.digest);
    // The old cache is still there by digest.
    expect((await getManifest(shim.url, 'promise/moved', first.digest)).bytes.equals(first.bytes)).toBe(true);
  });

  it('a corrupt index blob upstream gets 500 UNKNOWN as OCI JSON', async () => {
    const cache = variant('corrupt');
    await pushedCache('promise/corrupt', cache);
    // distribution serves a blob from its file without checking it: corrupt the file.
    const hex = cache.digest.slice('sha256:'.length);
    await writeFile(join(registry.dataDir, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data'), '{"not":"the index"}');
    const cold = await cleanup.track(startShim(registry.url));
    const res = await getManifest(cold.url, 'promise/corrupt', 'cache');
    expect(res.status).toBe(500);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(errorCode(res.bytes)).toBe('UNKNOWN');
  });
});

describe('an upstream that refuses the converted manifest', () => {
  let strict: Registry;
  let front: RunningShim;
  beforeAll(async () => {
    strict = await cleanup.track(startRegistry({ policyImageOnly: true }));
    front = await cleanup.track(startShim(strict.url));
    await pushBlobs(strict.url, 'promise/refused', fixture.blobs.values());
  });

  // Current behaviour, stated: the index blob is uploaded before the manifest PUT and stays
  // when the manifest is refused. It is unreferenced, so the registry's garbage collection
  // removes it; a retry finds it and skips the upload. regshim does not delete it: another
  // push of the same index (another tag) may be referencing it at that moment.
  it('passes the refusal back; stores no manifest; the index blob stays, unreferenced', async () => {
    const res = await putManifest(front.url, 'promise/refused', 'cache', fixture.bytes, OCI_INDEX);
    expect(res.status).toBe(403);
    expect(errorCode(res.bytes)).toBe('DENIED');
    expect((await getManifest(strict.url, 'promise/refused', 'cache', { accept: OCI_MANIFEST })).status).toBe(404);
    expect((await fetch(`${strict.url}/v2/promise/refused/blobs/${fixture.digest}`, { method: 'HEAD' })).status).toBe(200);
  });
});

describe('metrics', () => {
  it('exports every metric the README and the docs pages name', async () => {
    const root = join(import.meta.dirname, '..', '..');
    const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join('docs', f))];
    const namedIn = (page: string) => [...new Set(readFileSync(join(root, page), 'utf8').match(/\bregshim_[a-z_]+\b/g) ?? [])];
    // The metrics list lives in docs/operations.md (Observability).
    expect(namedIn(join('docs', 'operations.md')).length).toBeGreaterThanOrEqual(6);
    const named = [...new Set(pages.flatMap(namedIn))];
    const text = await (await fetch(`${shim.url}/metrics`)).text();
    const exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    expect(named.filter((name) => !exported.has(name))).toEqual([]);
    // "and Node's process metrics"
    expect(exported).toContain('regshim_process_resident_memory_bytes');
    expect(exported).toContain('regshim_nodejs_eventloop_lag_seconds');
  });
});
