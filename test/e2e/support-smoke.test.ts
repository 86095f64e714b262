// Proves the e2e helpers against the real parts, with no regshim in between: the real
// registry, ctr, skopeo and dockerd's BuildKit, and the fixture cache in its index form.
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanNamespaces, startContainerd, type Containerd } from '../support/containerd.js';
import { cachedSteps, startDockerd } from '../support/dockerd.js';
import { copyFixtureContext, fixtureCache, writeOciArchive } from '../support/oci-archive.js';
import { Cleanup } from '../support/cleanup.js';
import { makeTempDir, removeTempDir, runCommand } from '../support/processes.js';
import { startRegistry, type Registry } from '../support/registry.js';
import { makeMultiArchLayout, makeTestImage, skopeo } from '../support/skopeo.js';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

let registry: Registry;
let ctrd: Containerd;
let workDir: string;
let skopeoDir: string;

const cleanup = new Cleanup();
const tracked = <T extends { stop(): Promise<void> }>(p: Promise<T>) => cleanup.track(p);
const trackedTempDir = (prefix: string) => cleanup.tempDir(prefix);

beforeAll(async () => {
  workDir = await trackedTempDir('regshim-smoke-');
  // skopeo runs as nobody, so its folder is its own temp dir, not one inside workDir (0700).
  skopeoDir = await trackedTempDir('regshim-smoke-skopeo-');
  registry = await tracked(startRegistry());
  ctrd = await tracked(startContainerd());
});

afterAll(() => cleanup.run());

interface ManifestResponse {
  status: number;
  type: string | null;
  digest: string | null;
  body: Buffer;
}

async function getManifest(repo: string, ref: string, accept: string): Promise<ManifestResponse> {
  const res = await fetch(`${registry.url}/v2/${repo}/manifests/${ref}`, { headers: { accept } });
  return {
    status: res.status,
    type: res.headers.get('content-type'),
    digest: res.headers.get('docker-content-digest'),
    body: Buffer.from(await res.arrayBuffer()),
  };
}

async function layoutDigest(dir: string, ref: string): Promise<string | undefined> {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  return index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === ref)?.digest;
}

describe('e2e support helpers against the real registry and clients', () => {
  it('ctr imports the fixture index-form cache, pushes it, and fetches it back', async () => {
    const cache = await fixtureCache('index');
    const ref = `${registry.host}/team/app:cache`;
    const tar = await writeOciArchive({
      dir: join(workDir, 'cache-layout'),
      manifestBytes: cache.bytes,
      manifestMediaType: cache.mediaType,
      blobs: cache.blobs,
      refName: 'cache',
    });
    const imported = await ctrd.ctr([
      '-n', 'smoke', 'images', 'import', '--base-name', `${registry.host}/team/app`, '--all-platforms', '--no-unpack', tar,
    ]);
    expect(imported.stderr).toBe('');
    expect(imported.code).toBe(0);
    const pushed = await ctrd.ctr(['-n', 'smoke', 'images', 'push', '--plain-http', ref, ref]);
    expect(pushed.code, pushed.stderr).toBe(0);

    const got = await getManifest('team/app', 'cache', OCI_INDEX);
    expect(got.status).toBe(200);
    expect(got.type).toBe(OCI_INDEX);
    expect(got.digest).toBe(cache.digest);
    expect(got.body.equals(cache.bytes)).toBe(true);

    await cleanNamespaces(ctrd);
    expect((await ctrd.ctr(['-n', 'smoke', 'content', 'ls', '-q'])).stdout).toBe('');
    const fetched = await ctrd.ctr(['-n', 'smoke', 'content', 'fetch', '--plain-http', '--all-platforms', ref]);
    expect(fetched.code, fetched.stderr).toBe(0);
    const images = await ctrd.ctr(['-n', 'smoke', 'images', 'ls']);
    expect(images.stdout).toContain(cache.digest);
    const content = (await ctrd.ctr(['-n', 'smoke', 'content', 'ls', '-q'])).stdout.trim().split('\n').sort();
    expect(content).toEqual([cache.digest, ...cache.blobs.keys()].sort());
  });

  it('skopeo copies a single-arch image to the registry and back', async () => {
    const src = join(skopeoDir, 'img');
    const back = join(skopeoDir, 'img-back');
    const image = await makeTestImage(src, { layers: 3, seed: 'smoke', refName: 'v1' });
    const up = await skopeo(['copy', '--dest-tls-verify=false', `oci:${src}:v1`, `docker://${registry.host}/x/img:v1`], { tmpDir: skopeoDir });
    expect(up.code, up.stderr).toBe(0);

    const got = await getManifest('x/img', 'v1', OCI_MANIFEST);
    expect(got.status).toBe(200);
    expect(got.digest).toBe(image.digest);
    expect(got.body.equals(image.bytes)).toBe(true);

    const down = await skopeo(['copy', '--src-tls-verify=false', `docker://${registry.host}/x/img:v1`, `oci:${back}:v1`], { tmpDir: skopeoDir });
    expect(down.code, down.stderr).toBe(0);
    expect(await layoutDigest(back, 'v1')).toBe(image.digest);
  });

  it('skopeo copies a multi-arch index with --all to the registry and back', async () => {
    const src = join(skopeoDir, 'multi');
    const back = join(skopeoDir, 'multi-back');
    const index = await makeMultiArchLayout(src, { refName: 'v1' });
    const up = await skopeo(['copy', '--all', '--dest-tls-verify=false', `oci:${src}:v1`, `docker://${registry.host}/x/multi:v1`], {
      tmpDir: skopeoDir,
    });
    expect(up.code, up.stderr).toBe(0);

    const got = await getManifest('x/multi', 'v1', OCI_INDEX);
    expect(got.status).toBe(200);
    expect(got.digest).toBe(index.digest);
    expect(got.body.equals(index.bytes)).toBe(true);

    const down = await skopeo(['copy', '--all', '--src-tls-verify=false', `docker://${registry.host}/x/multi:v1`, `oci:${back}:v1`], {
      tmpDir: skopeoDir,
    });
    expect(down.code, down.stderr).toBe(0);
    expect(await layoutDigest(back, 'v1')).toBe(index.digest);
  });

  // Uses the cache the first test pushed to team/app:cache.
  it("dockerd's BuildKit imports the index-form cache straight from the registry", async () => {
    const dockerd = await tracked(startDockerd({ containerdSock: ctrd.sock, insecureRegistries: [registry.host] }));
    const ctx = join(workDir, 'ctx');
    await copyFixtureContext(ctx);
    const build = await dockerd.docker(['build', '--progress=plain', '--cache-from', `${registry.host}/team/app:cache`, '-t', 'local/t', ctx]);
    expect(build.code, build.stderr).toBe(0);
    // --progress=plain writes to stderr: "#5 [1/2] COPY a.txt /a.txt" then "#5 CACHED".
    expect(cachedSteps(build.stderr), build.stderr).toEqual(['[1/2] COPY a.txt /a.txt', '[2/2] COPY b.txt /b.txt']);
  });

  it('removeTempDir unmounts what a runtime left mounted under the folder, deepest first, then deletes it', async () => {
    const dir = await makeTempDir('regshim-smoke-mounts-');
    await mkdir(join(dir, 'a', 'deep'), { recursive: true });
    await mkdir(join(dir, 'b'));
    await mkdir(join(dir, 'with space'));
    for (const args of [['--bind', join(dir, 'a'), join(dir, 'b')], ['-t', 'tmpfs', 'none', join(dir, 'b', 'deep')], ['-t', 'tmpfs', 'none', join(dir, 'with space')]]) {
      const mounted = await runCommand('mount', args);
      expect(mounted.code, mounted.stderr).toBe(0);
    }
    await removeTempDir(dir);
    expect(await readFile('/proc/self/mountinfo', 'utf8')).not.toContain(dir);
    expect(existsSync(dir)).toBe(false);
  });
});
