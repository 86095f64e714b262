// What any replica answers, warm (it converted the cache) or fresh (it never saw it), against
// the real registry: sha512 pushes, an index blob that is gone, and bodies nested too deep.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getManifest, pushBlobs, putManifest, sha256 } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { type FixtureCache, fixtureCache } from '../support/oci-archive.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { type RunningShim, startShim } from '../support/regshim.js';
import { type GateProfile, startStrictGate } from '../support/strict-gate.js';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
// containerd's pusher before a PUT (its own type and the wildcard), and BuildKit's resolver (blobs.ts default).
const ACCEPTS = [`${OCI_MANIFEST}, */*`, undefined] as const;
const cleanup = new Cleanup();
let registry: Registry;
let index: FixtureCache;

beforeAll(async () => {
  registry = await cleanup.track(startRegistry());
  index = await fixtureCache('index');
});

afterAll(() => cleanup.run());

/** A regshim that converted nothing yet, for as long as the callback runs. */
async function withFresh<T>(use: (shim: RunningShim) => Promise<T>): Promise<T> {
  const shim = await startShim(registry.url);
  try {
    return await use(shim);
  } finally {
    await shim.stop();
  }
}

async function answers(shim: RunningShim, repo: string, ref: string) {
  const get = await getManifest(shim.url, repo, ref);
  const head = await getManifest(shim.url, repo, ref, { method: 'HEAD' });
  const code = get.status === 200 ? undefined : (JSON.parse(get.bytes.toString()) as { errors: { code: string }[] }).errors[0]?.code;
  return { get: get.status, head: head.status, code, bytes: get.status === 200 ? get.bytes : undefined, digest: head.headers.get('docker-content-digest') };
}

describe('a cache pushed by sha512', () => {
  it('is served by sha512, byte for byte, by a fresh replica as by the one that stored it', async () => {
    const repo = 'rep/sha512';
    await pushBlobs(registry.url, repo, index.blobs.values());
    const digest = `sha512:${createHash('sha512').update(index.bytes).digest('hex')}`;
    const warm = await cleanup.track(startShim(registry.url));
    const put = await putManifest(warm.url, repo, digest, index.bytes, OCI_INDEX);
    expect([put.status, put.headers.get('docker-content-digest')]).toEqual([201, digest]);
    for (const shim of [warm]) {
      const got = await answers(shim, repo, digest);
      expect([got.get, got.head, got.digest]).toEqual([200, 200, digest]);
      expect(got.bytes?.equals(index.bytes)).toBe(true);
    }
    await withFresh(async (fresh) => {
      const got = await answers(fresh, repo, digest);
      expect([got.get, got.head, got.digest]).toEqual([200, 200, digest]);
      expect(got.bytes?.equals(index.bytes)).toBe(true);
    });
  });
});

describe('an index blob deleted upstream behind regshim', () => {
  async function pushThenDeleteBlob(repo: string, bytes: Buffer, digest: string): Promise<RunningShim> {
    await pushBlobs(registry.url, repo, index.blobs.values());
    const warm = await cleanup.track(startShim(registry.url));
    expect((await putManifest(warm.url, repo, 'cache', bytes, OCI_INDEX)).status).toBe(201);
    // warm up every path: by tag and by digest
    expect((await answers(warm, repo, 'cache')).get).toBe(200);
    expect((await answers(warm, repo, digest)).get).toBe(200);
    const del = await fetch(`${registry.url}/v2/${repo}/blobs/${digest}`, { method: 'DELETE' });
    expect(del.status).toBe(202);
    return warm;
  }

  it('BuildKit-written index: by tag every replica rebuilds it (200, same bytes); by digest every replica answers 404', async () => {
    const warm = await pushThenDeleteBlob('rep/gone', index.bytes, index.digest);
    const fromWarm = { tag: await answers(warm, 'rep/gone', 'cache'), digest: await answers(warm, 'rep/gone', index.digest) };
    const fromFresh = await withFresh(async (fresh) => ({ tag: await answers(fresh, 'rep/gone', 'cache'), digest: await answers(fresh, 'rep/gone', index.digest) }));
    for (const got of [fromWarm, fromFresh]) {
      expect([got.tag.get, got.tag.head, got.tag.digest]).toEqual([200, 200, index.digest]);
      expect(got.tag.bytes?.equals(index.bytes)).toBe(true);
      expect([got.digest.get, got.digest.head, got.digest.code]).toEqual([404, 404, 'MANIFEST_UNKNOWN']);
    }
  });

  it('an index that cannot be rebuilt: every replica, by tag and by digest, GET and HEAD, answers 404 MANIFEST_UNKNOWN', async () => {
    const spaced = Buffer.from(JSON.stringify(JSON.parse(index.bytes.toString()), null, 2));
    const digest = `sha256:${createHash('sha256').update(spaced).digest('hex')}`;
    const warm = await pushThenDeleteBlob('rep/gone2', spaced, digest);
    const fromWarm = { tag: await answers(warm, 'rep/gone2', 'cache'), digest: await answers(warm, 'rep/gone2', digest) };
    const fromFresh = await withFresh(async (fresh) => ({ tag: await answers(fresh, 'rep/gone2', 'cache'), digest: await answers(fresh, 'rep/gone2', digest) }));
    for (const got of [fromWarm, fromFresh]) {
      expect([got.tag.get, got.tag.head, got.tag.code]).toEqual([404, 404, 'MANIFEST_UNKNOWN']);
      expect([got.digest.get, got.digest.head, got.digest.code]).toEqual([404, 404, 'MANIFEST_UNKNOWN']);
    }
  });
});

describe('deeply nested JSON', () => {
  it.each([64 + 1, 10_000, 1_000_000])('a cache index nested %i levels deep is 400 MANIFEST_INVALID, not 500', async (depth) => {
    const shim = await cleanup.track(startShim(registry.url));
    const body = Buffer.from(`{"schemaVersion":2,"mediaType":"${OCI_INDEX}","manifests":[{"mediaType":"application/vnd.buildkit.cacheconfig.v0","digest":"sha256:${'0'.repeat(64)}","size":1,"x":${'['.repeat(depth)}${']'.repeat(depth)}}]}`);
    const put = await putManifest(shim.url, 'rep/deep', 'cache', body, OCI_INDEX);
    expect(put.status).toBe(400);
    expect(JSON.parse(put.bytes.toString()).errors[0].code).toBe('MANIFEST_INVALID');
  });
});

describe.each<['distribution 2.8' | GateProfile]>([['distribution 2.8'], ['gcr'], ['quay'], ['gitlab']])('two replicas with no shared state, in front of %s', (upstream) => {
  let url: string;
  beforeAll(async () => {
    // The gates answer 404 for a digest that is not a manifest, as registries other than distribution 2.8 do.
    url = upstream === 'distribution 2.8' ? registry.url : (await cleanup.track(startStrictGate(registry.url, upstream, { registryDataDir: registry.dataDir }))).url;
  });

  it.each(['index', 'dlist', 'imgmanifest'] as const)('a %s pushed through one: either answers every tag and digest the same, by GET and HEAD, to a pusher and to an importer', async (form) => {
    const cache = await fixtureCache(form);
    const made = form === 'imgmanifest' ? (await fixtureCache('index')).digest : undefined;
    const repo = `rep/${upstream.replace(/\W/g, '')}-${form}`;
    await pushBlobs(registry.url, repo, cache.blobs.values());
    const one = await cleanup.track(startShim(url));
    const put = await putManifest(one.url, repo, 'cache', cache.bytes, cache.mediaType);
    expect([put.status, put.headers.get('docker-content-digest')]).toEqual([201, cache.digest]);
    const other = await cleanup.track(startShim(url));
    // Digests first: a replica that read the tag knows them without the registry.
    const refs = [cache.digest, ...(made ? [made] : []), 'cache'];
    const table = async (shim: RunningShim) => {
      const rows: unknown[] = [];
      for (const ref of refs) {
        for (const accept of ACCEPTS) {
          for (const method of ['HEAD', 'GET'] as const) {
            const got = await getManifest(shim.url, repo, ref, { method, ...(accept ? { accept } : {}) });
            rows.push([ref, accept ?? 'resolver', method, got.status, got.headers.get('content-type'), got.headers.get('docker-content-digest'), method === 'GET' ? sha256(got.bytes) : '']);
          }
        }
      }
      return rows;
    };
    const fromOther = await table(other);
    expect(fromOther).toEqual(await table(one));
    // what each client gets: the bytes pushed, or for BuildKit's manifest the index made from it
    for (const row of fromOther as unknown[][]) {
      expect(row[3]).toBe(200);
      const getsMade = made !== undefined && (row[0] === made || (row[0] === 'cache' && row[1] === 'resolver'));
      expect(row[5]).toBe(getsMade ? made : cache.digest);
    }
  });
});
