// regshim behind a TLS-terminating ingress (a real nginx sending X-Forwarded-*), in both
// Host modes: containerd's pusher (BuildKit's) pushes and fetches a cache through it. The
// upstream sees none of the ingress's headers, and every Location names the ingress.
import { mkdir, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cleanup } from '../support/cleanup.js';
import { type Containerd, cleanNamespaces, startContainerd } from '../support/containerd.js';
import { type CountingProxy, startCountingProxy } from '../support/counting-proxy.js';
import { type HostMode, startIngress } from '../support/ingress.js';
import { fixtureCache, writeOciArchive } from '../support/oci-archive.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { type RunningShim, startShim } from '../support/regshim.js';
import { httpsGet } from '../support/tls.js';

const NS = 'ingress';
const cleanup = new Cleanup();
let registry: Registry;
let wire: CountingProxy;
let shim: RunningShim;
let ctrd: Containerd;
let workDir: string;

beforeAll(async () => {
  workDir = await cleanup.tempDir('regshim-e2e-ingress-');
  registry = await cleanup.track(startRegistry());
  wire = await cleanup.track(startCountingProxy(registry.url));
  shim = await cleanup.track(startShim(wire.url));
  ctrd = await cleanup.track(startContainerd());
});

afterAll(() => cleanup.run());

describe.each<HostMode>(['preserve-host', 'backend-host'])('behind a TLS ingress (%s)', (mode) => {
  it('containerd pushes and fetches an index cache through it; the upstream never sees X-Forwarded-*', async () => {
    const ingress = await cleanup.track(startIngress(shim.url, mode));
    // ctr talks plain http to any loopback registry unless a hosts.toml says https.
    const caFile = join(workDir, `${mode}-ca.pem`);
    await writeFile(caFile, ingress.cert.pem);
    const hostsDir = join(workDir, `${mode}-hosts`);
    await mkdir(join(hostsDir, ingress.host), { recursive: true });
    await writeFile(join(hostsDir, ingress.host, 'hosts.toml'), `server = "${ingress.url}"\n[host."${ingress.url}"]\n  ca = ${JSON.stringify(caFile)}\n  capabilities = ["pull", "resolve", "push"]\n`);
    const cache = await fixtureCache('index');
    const tar = await writeOciArchive({ dir: join(workDir, mode), manifestBytes: cache.bytes, manifestMediaType: cache.mediaType, blobs: cache.blobs, refName: 'cache' });
    const ref = `${ingress.host}/team/${mode}:cache`;
    const imported = await ctrd.ctr(['-n', NS, 'images', 'import', '--base-name', `${ingress.host}/team/${mode}`, '--all-platforms', '--no-unpack', tar]);
    expect(imported.code, imported.stderr).toBe(0);
    wire.requests.length = 0;
    const pushed = await ctrd.ctr(['-n', NS, 'images', 'push', '--hosts-dir', hostsDir, ref, ref]);
    expect(pushed.code, `${pushed.stderr}\n${JSON.stringify(shim.logs.filter((l) => l.status === 400 || l.level === 50))}\n${JSON.stringify(wire.requests.map((r) => [r.method, r.path, r.status]))}`).toBe(0);
    // The index blob regshim uploaded for itself went to the registry like the client's own.
    expect(wire.requests.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/')).length).toBeGreaterThan(0);
    for (const r of wire.requests) {
      expect(Object.keys(r.headers).filter((h) => h.startsWith('x-forwarded') || h === 'forwarded' || h === 'x-real-ip'), `${r.method} ${r.path}`).toEqual([]);
    }
    expect(shim.logs.filter((l) => typeof l.status === 'number' && l.status >= 500)).toEqual([]);

    // Upload Locations name the ingress, scheme and host, whatever the Host mode.
    const post = await fetchVia(ingress.url, ingress.cert.pem, `/v2/team/${mode}/blobs/uploads/`, 'POST');
    expect(post.status).toBe(202);
    expect(String(post.headers.location)).toMatch(new RegExp(`^https://${ingress.host}/v2/team/${mode}/blobs/uploads/`));

    await cleanNamespaces(ctrd);
    const fetched = await ctrd.ctr(['-n', NS, 'content', 'fetch', '--hosts-dir', hostsDir, '--all-platforms', ref]);
    expect(fetched.code, fetched.stderr).toBe(0);
    const images = await ctrd.ctr(['-n', NS, 'images', 'ls']);
    expect(images.stdout).toContain(cache.digest);
    const head = await httpsGet(`${ingress.url}/v2/team/${mode}/manifests/cache`, ingress.cert.pem, { accept: cache.mediaType });
    expect(head.headers['docker-content-digest']).toBe(cache.digest);
  });
});

function fetchVia(base: string, ca: string, path: string, method: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = https.request(`${base}${path}`, { method, ca, headers: { 'content-length': '0' } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}
