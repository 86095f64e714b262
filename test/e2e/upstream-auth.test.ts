// Real clients with no credentials of their own, through a regshim that holds the
// registry's: skopeo (an image and a multi-arch index), containerd's pusher and fetcher
// (a BuildKit cache), and 1 GiB each way that outlasts several 2-second tokens.
// distribution 2.8 is the upstream, with htpasswd (Basic) and with token auth.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthedUpstream, type UpstreamAuthKind, secretsOf, startAuthedUpstream } from '../support/auth-upstream.js';
import { MiB, repeatedBlob, streamRequest } from '../support/big-blob.js';
import { getManifest } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { type Containerd, cleanNamespaces, startContainerd } from '../support/containerd.js';
import { type CountingProxy, startCountingProxy } from '../support/counting-proxy.js';
import { fixtureCache, writeOciArchive } from '../support/oci-archive.js';
import { type RunningShim, startShim, startShimProcess } from '../support/regshim.js';
import { makeMultiArchLayout, makeTestImage, skopeo } from '../support/skopeo.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const NS = 'upauth';

describe.each<UpstreamAuthKind>(['basic', 'token'])('real clients without credentials, upstream with %s auth', (kind) => {
  const cleanup = new Cleanup();
  let up: AuthedUpstream;
  let wire: CountingProxy;
  let shim: RunningShim;
  let ctrd: Containerd;
  let workDir: string;
  let skopeoDir: string;

  beforeAll(async () => {
    workDir = await cleanup.tempDir('regshim-e2e-upauth-');
    skopeoDir = await cleanup.tempDir('regshim-e2e-upauth-skopeo-');
    up = await cleanup.track(startAuthedUpstream(kind, workDir));
    wire = await cleanup.track(startCountingProxy(up.registry.url));
    await writeFile(join(workDir, 'upstream-password'), up.password);
    // At debug, the level the log test below reads.
    shim = await cleanup.track(startShim(wire.url, { upstreamUsername: up.username, upstreamPasswordFile: join(workDir, 'upstream-password'), logLevel: 'debug' }));
    ctrd = await cleanup.track(startContainerd());
  });
  afterAll(() => cleanup.run());

  /** oci layout -> regshim -> oci layout, with skopeo and no credentials. */
  async function skopeoRoundTrip(src: string, repo: string, extra: string[]): Promise<void> {
    const push = await skopeo(['copy', ...extra, '--dest-tls-verify=false', `oci:${src}:v1`, `docker://${shim.host}/${repo}:v1`], { tmpDir: skopeoDir });
    expect(push.code, push.stderr).toBe(0);
    const pull = await skopeo(['copy', ...extra, '--src-tls-verify=false', `docker://${shim.host}/${repo}:v1`, `oci:${src}-back:v1`], { tmpDir: skopeoDir });
    expect(pull.code, pull.stderr).toBe(0);
  }

  it('skopeo copies an image and a multi-arch index through regshim and back', async () => {
    const image = await makeTestImage(join(skopeoDir, 'single'), { layers: 2, seed: `upauth-${kind}`, refName: 'v1' });
    await skopeoRoundTrip(join(skopeoDir, 'single'), 'x/img', []);
    const index = await makeMultiArchLayout(join(skopeoDir, 'multi'), { seed: `upauth-multi-${kind}`, refName: 'v1' });
    await skopeoRoundTrip(join(skopeoDir, 'multi'), 'x/multi', ['--all']);
    // The upstream has them, and refuses anyone without credentials.
    const authorization = `Basic ${Buffer.from(`${up.username}:${up.password}`).toString('base64')}`;
    if (kind === 'basic') {
      expect((await getManifest(up.registry.url, 'x/img', 'v1', { accept: OCI_MANIFEST, headers: { authorization } })).headers.get('docker-content-digest')).toBe(image.digest);
    }
    expect((await getManifest(up.registry.url, 'x/multi', 'v1')).status).toBe(401);
    expect(index.digest).toMatch(/^sha256:/);
  });

  it('ctr pushes a BuildKit cache through regshim and fetches it back', async () => {
    const cache = await fixtureCache('index');
    const tar = await writeOciArchive({ dir: join(workDir, 'cache'), manifestBytes: cache.bytes, manifestMediaType: cache.mediaType, blobs: cache.blobs, refName: 'cache' });
    const ref = `${shim.host}/team/app:cache`;
    const imported = await ctrd.ctr(['-n', NS, 'images', 'import', '--base-name', `${shim.host}/team/app`, '--all-platforms', '--no-unpack', tar]);
    expect(imported.code, imported.stderr).toBe(0);
    const pushed = await ctrd.ctr(['-n', NS, 'images', 'push', '--plain-http', ref, ref]);
    expect(pushed.code, pushed.stderr).toBe(0);
    await cleanNamespaces(ctrd);
    const fetched = await ctrd.ctr(['-n', NS, 'content', 'fetch', '--plain-http', '--all-platforms', ref]);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect((await ctrd.ctr(['-n', NS, 'images', 'ls'])).stdout).toContain(cache.digest);
    const content = (await ctrd.ctr(['-n', NS, 'content', 'ls', '-q'])).stdout.trim().split('\n').sort();
    expect(content).toEqual([cache.digest, ...cache.blobs.keys()].sort());
  });

  // The modern BuildKit (dockerd 26, BuildKit 0.13) through these same upstreams:
  // buildx-auth.test.ts.

  it.runIf(kind === 'token')('1 GiB up (in 128 MiB chunks) and down outlasts several token lifetimes: renewals, and no 401 anywhere', async () => {
    const GiB = 1024 * MiB;
    const blob = repeatedBlob(MiB, 1024);
    // regshim as its own process, as users run it, straight to the registry.
    const big = await cleanup.track(
      startShimProcess(up.registry.url, ['--upstream-username', up.username, '--upstream-password-file', join(workDir, 'upstream-password')]),
    );
    const tokensBefore = up.tokens?.issued.length ?? 0;
    const statuses: number[] = [];
    const started = performance.now();
    const post = await streamRequest(`${big.url}/v2/big/blob/blobs/uploads/`, { method: 'POST', headers: { 'content-length': '0' } });
    statuses.push(post.status);
    let location = new URL(String(post.headers.location), big.url);
    const chunk = 128 * MiB;
    for (let offset = 0; offset < GiB; offset += chunk) {
      const body = chunksOf(blob.chunk, chunk / blob.chunk.length);
      const patch = await streamRequest(location.href, {
        method: 'PATCH',
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(chunk), 'content-range': `${offset}-${offset + chunk - 1}` },
        body,
      });
      statuses.push(patch.status);
      expect(patch.status, patch.head).toBe(202);
      location = new URL(String(patch.headers.location), big.url);
    }
    location.searchParams.set('digest', blob.digest);
    const put = await streamRequest(location.href, { method: 'PUT', headers: { 'content-length': '0' } });
    statuses.push(put.status);
    expect(put.status, put.head).toBe(201);
    const got = await streamRequest(`${big.url}/v2/big/blob/blobs/${blob.digest}`, { method: 'GET' });
    statuses.push(got.status);
    const seconds = (performance.now() - started) / 1000;
    expect(got.status).toBe(200);
    expect(got.bytes).toBe(GiB);
    expect(got.digest).toBe(blob.digest);
    expect(statuses.filter((s) => s === 401)).toEqual([]);
    // regshim sent nothing the registry refused: every token was renewed before it ran out.
    const metrics = await (await fetch(`${big.url}/metrics`)).text();
    expect(metrics).toMatch(/^regshim_upstream_auth_rejections_total 0$/m);
    if (up.tokens) {
      const pushTokens = up.tokens.issued.slice(tokensBefore).filter((i) => i.scopes.includes('repository:big/blob:pull,push'));
      // Tokens live 2 s and are renewed 1 s before: the upload alone outlasts a few.
      expect(pushTokens.length, `1 GiB up and down in ${seconds.toFixed(1)} s`).toBeGreaterThanOrEqual(2);
    }
  });

  it('logs of the whole authenticated push and pull, at debug, hold neither the password, nor its base64, nor a token', () => {
    expect(shim.logs.some((l) => l.level === 20)).toBe(true);
    const text = JSON.stringify(shim.logs);
    for (const secret of secretsOf(up)) expect(text).not.toContain(secret);
  });
});

/** `count` copies of `chunk` as a stream: a part of a repeated blob, made while it is sent. */
function chunksOf(chunk: Buffer, count: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      this.push(sent++ < count ? chunk : null);
    },
  });
}
