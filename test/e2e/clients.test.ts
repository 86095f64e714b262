// regshim is transparent for real clients that move ordinary images: skopeo (single-arch,
// multi-arch, registry to registry), containerd's pusher and fetcher (ctr), and 1 GiB blobs
// streamed both ways with regshim's memory bounded. distribution 2.8 is the upstream, and
// every copy through regshim is compared with the same copy made straight to it.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MiB, peakRssBytes, repeatedBlob, streamRequest } from '../support/big-blob.js';
import { type Fetched, getManifest } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { type Containerd, cleanNamespaces, startContainerd } from '../support/containerd.js';
import { writeOciArchive } from '../support/oci-archive.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { type RunningShim, startShim, startShimProcess } from '../support/regshim.js';
import { type TestImage, makeMultiArchLayout, makeTestImage, skopeo } from '../support/skopeo.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const NS = 'clients';
const GiB = 1024 * MiB;
// The bound of every regshim process while streaming (issue 9). Node 24 with its defaults
// would not keep it (173-207 MiB measured): regshim is started through its bin, whose
// shebang sets the memory tuning, and frees body buffers as soon as they are written
// (docs/performance.md). 83-85 MiB measured with the relay and the early release.
const PEAK_RSS_LIMIT = 100 * MiB;

const cleanup = new Cleanup();
let registry: Registry;
let shim: RunningShim;
let ctrd: Containerd;
let workDir: string;
let skopeoDir: string;

beforeAll(async () => {
  workDir = await cleanup.tempDir('regshim-e2e-clients-');
  // skopeo runs as nobody, so its folder is its own temp dir, not one inside workDir (0700).
  skopeoDir = await cleanup.tempDir('regshim-e2e-clients-skopeo-');
  registry = await cleanup.track(startRegistry());
  shim = await cleanup.track(startShim(registry.url));
  ctrd = await cleanup.track(startContainerd());
});

afterAll(() => cleanup.run());

/** What a copy to a registry and back to a layout leaves behind, for comparing two hosts. */
interface RoundTrip {
  /** skopeo --digestfile of the push. */
  pushed: string;
  /** skopeo --digestfile of the pull back into a layout. */
  pulled: string;
  /** The digest the pulled layout's index.json names for the tag. */
  layoutDigest: string | undefined;
  /** Every blob file of the pulled layout, as digests of their bytes. */
  layoutBlobs: string[];
}

/** `oci:<src>:v1` -> `docker://<host>/<repo>:v1` -> `oci:<name>-back:v1`, with skopeo. */
async function roundTrip(src: string, host: string, repo: string, name: string, extra: string[] = []): Promise<RoundTrip> {
  const pushedFile = join(skopeoDir, `${name}.pushed`);
  const pulledFile = join(skopeoDir, `${name}.pulled`);
  const back = join(skopeoDir, `${name}-back`);
  const up = await skopeo(
    ['copy', ...extra, '--dest-tls-verify=false', '--digestfile', pushedFile, `oci:${src}:v1`, `docker://${host}/${repo}:v1`],
    { tmpDir: skopeoDir },
  );
  expect(up.code, up.stderr).toBe(0);
  const down = await skopeo(
    ['copy', ...extra, '--src-tls-verify=false', '--digestfile', pulledFile, `docker://${host}/${repo}:v1`, `oci:${back}:v1`],
    { tmpDir: skopeoDir },
  );
  expect(down.code, down.stderr).toBe(0);
  return {
    pushed: await readFile(pushedFile, 'utf8'),
    pulled: await readFile(pulledFile, 'utf8'),
    layoutDigest: await layoutDigest(back, 'v1'),
    layoutBlobs: await layoutBlobs(back),
  };
}

async function layoutDigest(dir: string, ref: string): Promise<string | undefined> {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  return index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === ref)?.digest;
}

async function layoutBlobs(dir: string): Promise<string[]> {
  const names = await readdir(join(dir, 'blobs', 'sha256'));
  return names.map((n) => `sha256:${n}`).sort();
}

/** The upstream's own copy of a manifest, fetched without regshim. */
function upstreamManifest(repo: string, ref: string, accept: string): Promise<Fetched> {
  return getManifest(registry.url, repo, ref, { accept });
}

function expectStored(got: Fetched, mediaType: string, bytes: Buffer, digest: string): void {
  expect(got.status).toBe(200);
  expect(got.headers.get('content-type')).toBe(mediaType);
  expect(got.headers.get('docker-content-digest')).toBe(digest);
  expect(got.bytes.equals(bytes)).toBe(true);
}

/** Every blob of an image, manifest included, as a sorted list of digests. */
function allDigests(image: TestImage): string[] {
  return [image.digest, ...image.blobs.keys()].sort();
}

/** Log lines at warn or above (pino: 40 warn, 50 error, 60 fatal), and requests regshim failed. */
function troubles(logs: Record<string, unknown>[]): Record<string, unknown>[] {
  return logs.filter((l) => (l.level as number) >= 40 || (typeof l.status === 'number' && l.status >= 499));
}

describe('regshim is transparent for real clients', () => {
  it('skopeo copies a single-arch image through regshim and back, exactly as straight to the registry', async () => {
    const src = join(skopeoDir, 'single');
    const image = await makeTestImage(src, { layers: 3, seed: 'clients-single', refName: 'v1' });

    const direct = await roundTrip(src, registry.host, 'direct/img', 'single-direct');
    const viaShim = await roundTrip(src, shim.host, 'x/img', 'single-shim');

    expect(viaShim).toEqual(direct);
    expect(viaShim).toEqual({ pushed: image.digest, pulled: image.digest, layoutDigest: image.digest, layoutBlobs: allDigests(image) });
    expectStored(await upstreamManifest('x/img', 'v1', OCI_MANIFEST), OCI_MANIFEST, image.bytes, image.digest);
    expectStored(await upstreamManifest('direct/img', 'v1', OCI_MANIFEST), OCI_MANIFEST, image.bytes, image.digest);
    expect(troubles(shim.logs)).toEqual([]);
  });

  it('skopeo copies a multi-arch OCI index with --all through regshim and back, exactly as straight to the registry', async () => {
    const src = join(skopeoDir, 'multi');
    const index = await makeMultiArchLayout(src, { seed: 'clients-multi', refName: 'v1' });

    const direct = await roundTrip(src, registry.host, 'direct/multi', 'multi-direct', ['--all']);
    const viaShim = await roundTrip(src, shim.host, 'x/multi', 'multi-shim', ['--all']);

    expect(viaShim).toEqual(direct);
    expect(viaShim).toEqual({ pushed: index.digest, pulled: index.digest, layoutDigest: index.digest, layoutBlobs: allDigests(index) });
    expectStored(await upstreamManifest('x/multi', 'v1', OCI_INDEX), OCI_INDEX, index.bytes, index.digest);
    const children = (JSON.parse(index.bytes.toString('utf8')) as { manifests: { digest: string }[] }).manifests;
    expect(children).toHaveLength(2);
    for (const child of children) {
      const bytes = index.blobs.get(child.digest);
      if (!bytes) throw new Error(`no blob for ${child.digest}`);
      expectStored(await upstreamManifest('x/multi', child.digest, OCI_MANIFEST), OCI_MANIFEST, bytes, child.digest);
    }
    expect(troubles(shim.logs)).toEqual([]);
  });

  it('skopeo copies registry to registry through regshim with --preserve-digests', async () => {
    const src = join(skopeoDir, 'preserve');
    const image = await makeTestImage(src, { layers: 2, seed: 'clients-preserve', refName: 'v1' });
    const seeded = await skopeo(['copy', '--dest-tls-verify=false', `oci:${src}:v1`, `docker://${shim.host}/x/img:v1`], {
      tmpDir: skopeoDir,
    });
    expect(seeded.code, seeded.stderr).toBe(0);
    // The first test may already have left x/img:v1; this one pushes its own image there.
    expectStored(await upstreamManifest('x/img', 'v1', OCI_MANIFEST), OCI_MANIFEST, image.bytes, image.digest);

    const digestFile = join(skopeoDir, 'preserve.copied');
    const copied = await skopeo(
      [
        'copy', '--preserve-digests', '--src-tls-verify=false', '--dest-tls-verify=false', '--digestfile', digestFile,
        `docker://${shim.host}/x/img:v1`, `docker://${shim.host}/y/img:v1`,
      ],
      { tmpDir: skopeoDir },
    );
    expect(copied.code, copied.stderr).toBe(0);
    expect(await readFile(digestFile, 'utf8')).toBe(image.digest);
    expectStored(await upstreamManifest('y/img', 'v1', OCI_MANIFEST), OCI_MANIFEST, image.bytes, image.digest);
    for (const [digest, bytes] of image.blobs) {
      const blob = await fetch(`${registry.url}/v2/y/img/blobs/${digest}`);
      expect(blob.status).toBe(200);
      expect(Buffer.from(await blob.arrayBuffer()).equals(bytes)).toBe(true);
    }
    expect(troubles(shim.logs)).toEqual([]);
  });

  it('ctr pushes an image through regshim and fetches it back', async () => {
    const image = await makeTestImage(join(workDir, 'ctr-src'), { layers: 2, seed: 'clients-ctr', refName: 'v1' });
    const tar = await writeOciArchive({
      dir: join(workDir, 'ctr-layout'),
      manifestBytes: image.bytes,
      manifestMediaType: image.mediaType,
      blobs: image.blobs,
      refName: 'v1',
    });
    const ref = `${shim.host}/x/ctr:v1`;
    const imported = await ctrd.ctr(['-n', NS, 'images', 'import', '--base-name', `${shim.host}/x/ctr`, '--all-platforms', '--no-unpack', tar]);
    expect(imported.code, imported.stderr).toBe(0);
    const pushed = await ctrd.ctr(['-n', NS, 'images', 'push', '--plain-http', ref, ref]);
    expect(pushed.code, pushed.stderr).toBe(0);
    expectStored(await upstreamManifest('x/ctr', 'v1', OCI_MANIFEST), OCI_MANIFEST, image.bytes, image.digest);

    await cleanNamespaces(ctrd);
    expect((await ctrd.ctr(['-n', NS, 'content', 'ls', '-q'])).stdout).toBe('');
    const fetched = await ctrd.ctr(['-n', NS, 'content', 'fetch', '--plain-http', '--all-platforms', ref]);
    expect(fetched.code, fetched.stderr).toBe(0);
    const images = await ctrd.ctr(['-n', NS, 'images', 'ls', '-q']);
    expect(images.stdout).toBe(`${ref}\n`);
    const listed = await ctrd.ctr(['-n', NS, 'images', 'ls']);
    expect(listed.stdout).toContain(image.digest);
    const content = (await ctrd.ctr(['-n', NS, 'content', 'ls', '-q'])).stdout.trim().split('\n').sort();
    expect(content).toEqual(allDigests(image));
    expect(troubles(shim.logs)).toEqual([]);
  });

  it('streams 1 GiB blobs up (monolithic PUT and PATCH + PUT) and down through regshim in bounded memory', { timeout: 240_000 }, async ({ annotate }) => {
    const proc = await cleanup.track(startShimProcess(registry.url));
    const repo = 'big/blob';
    const monolithic = repeatedBlob(MiB, 1024);
    const patched = repeatedBlob(MiB, 1024);
    expect(monolithic.size).toBe(GiB);

    // POST + monolithic PUT ("Pushing a blob monolithically", POST then PUT).
    const post = await streamRequest(`${proc.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: { 'content-length': 0 } });
    expect(post.status, post.head).toBe(202);
    const session = new URL(post.headers.location ?? '');
    expect(session.origin).toBe(proc.url);
    session.searchParams.set('digest', monolithic.digest);
    const put = await streamRequest(session.href, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'content-length': monolithic.size },
      body: monolithic.stream(),
    });
    expect(put.status, put.head).toBe(201);
    expect(put.headers['docker-content-digest']).toBe(monolithic.digest);
    expect(put.headers.location).toBe(`${proc.url}/v2/${repo}/blobs/${monolithic.digest}`);

    // POST + one streamed PATCH (chunked, no Content-Range) + empty PUT ("Pushing a blob in chunks").
    const post2 = await streamRequest(`${proc.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: { 'content-length': 0 } });
    expect(post2.status, post2.head).toBe(202);
    const patch = await streamRequest(new URL(post2.headers.location ?? '').href, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream' },
      body: patched.stream(),
    });
    expect(patch.status, patch.head).toBe(202);
    expect(patch.headers.range).toBe(`0-${GiB - 1}`);
    const closing = new URL(patch.headers.location ?? '');
    expect(closing.origin).toBe(proc.url);
    closing.searchParams.set('digest', patched.digest);
    const close = await streamRequest(closing.href, { method: 'PUT', headers: { 'content-length': 0 } });
    expect(close.status, close.head).toBe(201);
    expect(close.headers['docker-content-digest']).toBe(patched.digest);
    expect(close.headers.location).toBe(`${proc.url}/v2/${repo}/blobs/${patched.digest}`);

    for (const blob of [monolithic, patched]) {
      const stored = await fetch(`${registry.url}/v2/${repo}/blobs/${blob.digest}`, { method: 'HEAD' });
      expect([stored.status, stored.headers.get('content-length')]).toEqual([200, String(GiB)]);

      const down = await streamRequest(`${proc.url}/v2/${repo}/blobs/${blob.digest}`, { method: 'GET' });
      expect(down.status, down.head).toBe(200);
      expect(down.headers['content-length']).toBe(String(GiB));
      expect(down.headers['docker-content-digest']).toBe(blob.digest);
      expect(down.bytes).toBe(GiB);
      expect(down.digest).toBe(blob.digest);
    }

    const peak = await peakRssBytes(proc.pid);
    await annotate(`regshim peak RSS (VmHWM) after 2 GiB up and 2 GiB down: ${(peak / MiB).toFixed(1)} MiB`);
    expect(peak, `peak RSS ${(peak / MiB).toFixed(1)} MiB`).toBeLessThan(PEAK_RSS_LIMIT);
    process.stderr.write(`regshim peak RSS over 2 GiB up and 2 GiB down: ${(peak / MiB).toFixed(1)} MiB\n`);
  });
});
