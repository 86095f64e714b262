// https both ways: an upstream with its own CA (--upstream-ca), and clients reaching
// regshim over https (--tls-cert/--tls-key), as BuildKit does unless told http = true.
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cleanup } from '../support/cleanup.js';
import { fixtureCache } from '../support/oci-archive.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { type RunningShim, startShim } from '../support/regshim.js';
import { type Certificate, httpsGet, makeCertificate } from '../support/tls.js';

const cleanup = new Cleanup();
let upstreamCert: Certificate;
let shimCert: Certificate;
let registry: Registry;
let shim: RunningShim;

beforeAll(async () => {
  const dir = await cleanup.tempDir('regshim-tls-');
  upstreamCert = await makeCertificate(dir, 'upstream');
  shimCert = await makeCertificate(dir, 'shim');
  registry = await cleanup.track(startRegistry({ tls: upstreamCert }));
  shim = await cleanup.track(startShim(registry.url, { upstreamCa: upstreamCert.certFile, tlsCert: shimCert.certFile, tlsKey: shimCert.keyFile }));
});

afterAll(() => cleanup.run());

function send(method: string, url: string, headers: Record<string, string>, body?: Buffer): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, ca: shimCert.pem, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('https', () => {
  it('serves clients over https and trusts the upstream through --upstream-ca', async () => {
    expect(shim.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const ping = await httpsGet(`${shim.url}/v2/`, shimCert.pem);
    expect(ping.status).toBe(200);
    expect((await httpsGet(`${shim.url}/readyz`, shimCert.pem)).status).toBe(200);
  });

  it('rewrites upload Locations to https on regshim, and converts a cache over https', async () => {
    const cache = await fixtureCache('index');
    for (const blob of cache.blobs.values()) {
      const post = await send('POST', `${shim.url}/v2/tls/app/blobs/uploads/`, {});
      expect(post.status).toBe(202);
      const location = new URL(post.headers.location as string);
      expect(location.origin).toBe(shim.url);
      const { createHash } = await import('node:crypto');
      location.searchParams.set('digest', `sha256:${createHash('sha256').update(blob).digest('hex')}`);
      const put = await send('PUT', location.href, { 'content-type': 'application/octet-stream', 'content-length': String(blob.length) }, blob);
      expect(put.status).toBe(201);
    }
    const put = await send('PUT', `${shim.url}/v2/tls/app/manifests/cache`, { 'content-type': cache.mediaType, 'content-length': String(cache.bytes.length) }, cache.bytes);
    expect(put.status).toBe(201);
    const got = await httpsGet(`${shim.url}/v2/tls/app/manifests/cache`, shimCert.pem, { accept: cache.mediaType });
    expect(got.body.equals(cache.bytes)).toBe(true);
  });

  it('refuses an upstream it cannot verify: 502, not a silent downgrade', async () => {
    const untrusting = await cleanup.track(startShim(registry.url));
    const res = await fetch(`${untrusting.url}/v2/`);
    expect(res.status).toBe(502);
    expect(((await res.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('UPSTREAM_UNREACHABLE');
  });
});
