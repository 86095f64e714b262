// The cache conversion with real parts: containerd's pusher and fetcher (what BuildKit
// uses), dockerd 20.10's BuildKit importing through regshim, distribution 2.8 upstream.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getManifest } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { type Containerd, cleanNamespaces, startContainerd } from '../support/containerd.js';
import { type CountingProxy, startCountingProxy } from '../support/counting-proxy.js';
import { cachedSteps, startDockerd } from '../support/dockerd.js';
import { type CacheForm, type FixtureCache, copyFixtureContext, fixtureCache, writeOciArchive } from '../support/oci-archive.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { type RunningShim, startShim, startShimProcess } from '../support/regshim.js';
import { startStrictGate } from '../support/strict-gate.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const NS = 'e2e';

const cleanup = new Cleanup();
let registry: Registry;
let wire: CountingProxy;
let shim: RunningShim;
let ctrd: Containerd;
let workDir: string;
const caches = new Map<CacheForm, FixtureCache>();

beforeAll(async () => {
  workDir = await cleanup.tempDir('regshim-e2e-cache-');
  registry = await cleanup.track(startRegistry());
  wire = await cleanup.track(startCountingProxy(registry.url));
  shim = await cleanup.track(startShim(wire.url));
  ctrd = await cleanup.track(startContainerd());
  for (const form of ['index', 'dlist', 'imgmanifest'] as const) caches.set(form, await fixtureCache(form));
});

afterAll(() => cleanup.run());

function cache(form: CacheForm): FixtureCache {
  const c = caches.get(form);
  if (!c) throw new Error(`no fixture ${form}`);
  return c;
}

/** Imports a fixture cache into containerd under `<host>/<repo>:<tag>` and pushes it, as BuildKit does. */
async function push(form: CacheForm, host: string, repo: string, tag: string) {
  const c = cache(form);
  const tar = await writeOciArchive({ dir: join(workDir, `${form}-${tag}-${Date.now()}`), manifestBytes: c.bytes, manifestMediaType: c.mediaType, blobs: c.blobs, refName: tag });
  const imported = await ctrd.ctr(['-n', NS, 'images', 'import', '--base-name', `${host}/${repo}`, '--all-platforms', '--no-unpack', tar]);
  expect(imported.code, imported.stderr).toBe(0);
  const ref = `${host}/${repo}:${tag}`;
  return ctrd.ctr(['-n', NS, 'images', 'push', '--plain-http', ref, ref]);
}

/** From empty content stores, fetches a ref and returns what containerd then holds. */
async function fetchFresh(ref: string): Promise<{ code: number; stderr: string; images: string; content: string[] }> {
  await cleanNamespaces(ctrd);
  const fetched = await ctrd.ctr(['-n', NS, 'content', 'fetch', '--plain-http', '--all-platforms', ref]);
  const images = (await ctrd.ctr(['-n', NS, 'images', 'ls'])).stdout;
  const content = (await ctrd.ctr(['-n', NS, 'content', 'ls', '-q'])).stdout.trim().split('\n').filter(Boolean).sort();
  return { code: fetched.code, stderr: fetched.stderr, images, content };
}

describe('containerd pushes a cache through regshim', () => {
  it.each(['index', 'dlist'] as const)('%s form: the registry holds an image manifest; a fetch gets the original back', async (form) => {
    const c = cache(form);
    const tag = `cache-${form}`;
    const pushed = await push(form, shim.host, 'team/app', tag);
    expect(pushed.code, pushed.stderr).toBe(0);

    const direct = await getManifest(registry.url, 'team/app', tag, { accept: OCI_MANIFEST });
    expect(direct.status).toBe(200);
    expect(direct.headers.get('content-type')).toBe(OCI_MANIFEST);
    const manifest = JSON.parse(direct.bytes.toString()) as { config: { mediaType: string; digest: string }; layers: { digest: string }[] };
    expect(manifest.config.mediaType).toBe('application/vnd.buildkit.cacheconfig.v0');
    expect(new Set([manifest.config.digest, ...manifest.layers.map((l) => l.digest)])).toEqual(new Set([...c.blobs.keys(), c.digest]));

    const fetched = await fetchFresh(`${shim.host}/team/app:${tag}`);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(fetched.images).toContain(c.digest);
    expect(fetched.content).toEqual([c.digest, ...c.blobs.keys()].sort());
    // containerd verified every byte against its digest as it fetched.
  });

  it('a re-push of an identical cache sends no manifest PUT and no upload', async () => {
    const first = await push('index', shim.host, 'team/app', 'cache-repush');
    expect(first.code, first.stderr).toBe(0);
    wire.take();
    const again = await push('index', shim.host, 'team/app', 'cache-repush');
    expect(again.code, again.stderr).toBe(0);
    const seen = wire.take();
    expect(seen.filter((r) => !r.startsWith('HEAD '))).toEqual([]);
    expect(seen).toContain('HEAD /v2/team/app/manifests/cache-repush');
  });

  it("BuildKit's own image-manifest cache is stored byte for byte; a pusher gets it back, an importer the index made from it", async () => {
    const c = cache('imgmanifest');
    const pushed = await push('imgmanifest', shim.host, 'team/app', 'cache-imgmanifest');
    expect(pushed.code, pushed.stderr).toBe(0);
    const direct = await getManifest(registry.url, 'team/app', 'cache-imgmanifest', { accept: OCI_MANIFEST });
    expect(direct.bytes.equals(c.bytes)).toBe(true);
    const asPusher = await getManifest(shim.url, 'team/app', 'cache-imgmanifest', { accept: `${OCI_MANIFEST}, */*` });
    expect(asPusher.bytes.equals(c.bytes)).toBe(true);
    expect(asPusher.headers.get('docker-content-digest')).toBe(c.digest);
    // containerd's fetch resolves as BuildKit's importer does: the made index, then every blob it names.
    const index = cache('index');
    const fetched = await fetchFresh(`${shim.host}/team/app:cache-imgmanifest`);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(fetched.images).toContain(index.digest);
    expect(fetched.content).toEqual([index.digest, ...index.blobs.keys()].sort());
  });
});

describe('restarts and replicas: the registry is the source of truth', () => {
  it('a cache pushed through regshim A is served identically by a fresh regshim B after A stops', async () => {
    const a = await startShimProcess(registry.url);
    let pushed;
    try {
      pushed = await push('index', a.host, 'team/restart', 'cache');
    } finally {
      await a.stop();
    }
    expect(pushed.code, pushed.stderr).toBe(0);
    const b = await cleanup.track(startShimProcess(registry.url));
    const c = cache('index');
    const got = await getManifest(b.url, 'team/restart', 'cache');
    expect(got.bytes.equals(c.bytes)).toBe(true);
    expect(got.headers.get('docker-content-digest')).toBe(c.digest);
    const byDigest = await getManifest(b.url, 'team/restart', c.digest);
    expect(byDigest.bytes.equals(c.bytes)).toBe(true);
    const fetched = await fetchFresh(`${b.host}/team/restart:cache`);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(fetched.content).toEqual([c.digest, ...c.blobs.keys()].sort());
  });

  it('two replicas at once: push through one, pull through the other', async () => {
    const [one, two] = await Promise.all([cleanup.track(startShimProcess(registry.url)), cleanup.track(startShimProcess(registry.url))]);
    const pushed = await push('dlist', one.host, 'team/replica', 'cache');
    expect(pushed.code, pushed.stderr).toBe(0);
    const c = cache('dlist');
    const fetched = await fetchFresh(`${two.host}/team/replica:cache`);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(fetched.images).toContain(c.digest);
    expect(fetched.content).toEqual([c.digest, ...c.blobs.keys()].sort());
  });
});

describe('a strict upstream (simulated gate in front of the real registry)', () => {
  it('refuses the index form pushed straight to it, and accepts it through regshim', async () => {
    const gate = await cleanup.track(startStrictGate(registry.url));
    const front = await cleanup.track(startShim(gate.url));
    const direct = await push('index', gate.host, 'team/strict', 'cache');
    expect(direct.code).not.toBe(0);
    expect(direct.stderr).toMatch(/400 Bad Request/);
    expect(gate.refused).toEqual(['/v2/team/strict/manifests/cache']);

    const through = await push('index', front.host, 'team/strict', 'cache');
    expect(through.code, through.stderr).toBe(0);
    expect(gate.refused).toHaveLength(1);
    const fetched = await fetchFresh(`${front.host}/team/strict:cache`);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(fetched.images).toContain(cache('index').digest);
  });
});

describe("dockerd 20.10's BuildKit imports through regshim", () => {
  it('gets CACHED for both steps through regshim, and none straight from the upstream (the control)', async () => {
    // A fresh regshim, in front of a registry that will not serve the index by digest
    // as distribution 2.8 does: the import must work from regshim's own mapping.
    const pushed = await push('index', shim.host, 'team/dockerd', 'cache');
    expect(pushed.code, pushed.stderr).toBe(0);
    const gate = await cleanup.track(startStrictGate(registry.url));
    const importer = await cleanup.track(startShim(gate.url));
    const dockerd = await cleanup.track(startDockerd({ containerdSock: ctrd.sock, insecureRegistries: [registry.host, importer.host] }));
    const ctx = join(workDir, 'ctx');
    await copyFixtureContext(ctx);

    const control = await dockerd.docker(['build', '--progress=plain', '--cache-from', `${registry.host}/team/dockerd:cache`, '-t', 'local/control', ctx]);
    expect(control.code, control.stderr).toBe(0);
    expect(cachedSteps(control.stderr)).toEqual([]);
    expect((await dockerd.docker(['builder', 'prune', '-af'])).code).toBe(0);
    expect((await dockerd.docker(['rmi', '-f', 'local/control'])).code).toBe(0);

    const build = await dockerd.docker(['build', '--progress=plain', '--cache-from', `${importer.host}/team/dockerd:cache`, '-t', 'local/t', ctx]);
    expect(build.code, build.stderr).toBe(0);
    expect(cachedSteps(build.stderr), build.stderr).toEqual(['[1/2] COPY a.txt /a.txt', '[2/2] COPY b.txt /b.txt']);
    expect(importer.logs.some((l) => l.msg === 'cache index restored' && l.indexDigest === cache('index').digest)).toBe(true);
  });
});

describe('a registry that allow-lists media types (the Quay profile of the strict-gate simulation)', () => {
  it("BuildKit's image-manifest cache: refused straight, stored through regshim in the image form; a second replica serves it to containerd and to dockerd 20.10's BuildKit, every step cached", async () => {
    const gate = await cleanup.track(startStrictGate(registry.url, 'quay', { registryDataDir: registry.dataDir }));
    const direct = await push('imgmanifest', gate.host, 'quay/e2e', 'cache');
    expect(direct.code).not.toBe(0);
    expect(direct.stderr).toMatch(/400 Bad Request/);

    const one = await cleanup.track(startShim(gate.url));
    const pushed = await push('imgmanifest', one.host, 'quay/e2e', 'cache');
    expect(pushed.code, pushed.stderr).toBe(0);
    const stored = JSON.parse((await getManifest(registry.url, 'quay/e2e', 'cache', { accept: OCI_MANIFEST })).bytes.toString()) as { config: { mediaType: string } };
    expect(stored.config.mediaType).toBe('application/vnd.oci.image.config.v1+json');
    expect(gate.refused).toHaveLength(2); // the control, and regshim's first try in BuildKit's form

    // Another replica, no shared state: a re-push of the same cache writes nothing.
    const two = await cleanup.track(startShim(gate.url));
    const again = await push('imgmanifest', two.host, 'quay/e2e', 'cache');
    expect(again.code, again.stderr).toBe(0);
    expect(two.logs.filter((l) => l.msg === 'request' && l.method === 'PUT')).toEqual([]);

    const index = cache('index');
    const fetched = await fetchFresh(`${two.host}/quay/e2e:cache`);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(fetched.content).toEqual([index.digest, ...index.blobs.keys()].sort());

    const dockerd = await cleanup.track(startDockerd({ containerdSock: ctrd.sock, insecureRegistries: [two.host] }));
    const ctx = join(workDir, 'ctx-quay');
    await copyFixtureContext(ctx);
    const build = await dockerd.docker(['build', '--progress=plain', '--cache-from', `${two.host}/quay/e2e:cache`, '-t', 'local/q', ctx]);
    expect(build.code, build.stderr).toBe(0);
    expect(cachedSteps(build.stderr), build.stderr).toEqual(['[1/2] COPY a.txt /a.txt', '[2/2] COPY b.txt /b.txt']);
  });
});
