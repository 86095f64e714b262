// The request log line says what regshim did (action) and where (path); a refusal of what
// regshim sent quotes the registry's own code and message, and nothing else of its body.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OCI_INDEX } from '../../src/registry/media-types.js';
import { getManifest, pushBlobs, putManifest } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { type FixtureCache, fixtureCache } from '../support/oci-archive.js';
import { startRegistry } from '../support/registry.js';
import { type RunningShim, startShim } from '../support/regshim.js';
import { waitFor } from '../support/processes.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run());

/** The request line of the response with this X-Request-Id (written when the response closes). */
async function lineOf(shim: RunningShim, reqId: string): Promise<Record<string, unknown>> {
  await waitFor(async () => shim.logs.some((l) => l.msg === 'request' && l.reqId === reqId), { timeoutMs: 5_000, what: `the log line of ${reqId}` });
  return shim.logs.find((l) => l.msg === 'request' && l.reqId === reqId) as Record<string, unknown>;
}

describe('request lines: the action and the path', () => {
  let shim: RunningShim;
  let cache: FixtureCache;
  beforeAll(async () => {
    const registry = await cleanup.track(startRegistry());
    shim = await cleanup.track(startShim(registry.url));
    cache = await fixtureCache('index');
    await pushBlobs(shim.url, 'log/app', cache.blobs.values());
  });

  it.each<[string, () => Promise<Response>, Record<string, unknown>]>([
    ['a cache PUT is converted', async () => fetch(`${shim.url}/v2/log/app/manifests/cache`, { method: 'PUT', headers: { 'content-type': OCI_INDEX, 'x-request-id': 'put-1' }, body: new Uint8Array(cache.bytes) }), { reqId: 'put-1', action: 'converted', status: 201, method: 'PUT', path: '/v2/log/app/manifests/cache' }],
    ['its GET is restored', async () => fetch(`${shim.url}/v2/log/app/manifests/cache`, { headers: { accept: OCI_INDEX, 'x-request-id': 'get-1' } }), { reqId: 'get-1', action: 'restored', status: 200 }],
    ['its HEAD too', async () => fetch(`${shim.url}/v2/log/app/manifests/cache`, { method: 'HEAD', headers: { accept: OCI_INDEX, 'x-request-id': 'head-1' } }), { reqId: 'head-1', action: 'restored', status: 200 }],
    ['a blob is passed through', async () => fetch(`${shim.url}/v2/log/app/blobs/${[...cache.blobs.keys()][0]}`, { headers: { 'x-request-id': 'blob-1' } }), { reqId: 'blob-1', action: 'passed-through', status: 200 }],
    ['an upload URL is logged without its query', async () => fetch(`${shim.url}/v2/log/app/blobs/uploads/abc?_state=secret-state`, { method: 'PATCH', headers: { 'x-request-id': 'up-1' } }), { reqId: 'up-1', path: '/v2/log/app/blobs/uploads/abc', action: 'passed-through' }],
    ['regshim’s own refusal', async () => fetch(`${shim.url}/nope`, { headers: { 'x-request-id': 'own-1' } }), { reqId: 'own-1', action: 'refused', status: 404 }],
    ['its own paths are answered', async () => fetch(`${shim.url}/healthz`, { headers: { 'x-request-id': 'own-2' } }), { reqId: 'own-2', action: 'answered', status: 200 }],
  ])('%s', async (_what, send, want) => {
    const res = await send();
    await res.arrayBuffer();
    expect(await lineOf(shim, want.reqId as string)).toMatchObject(want);
  });

  it("BuildKit's image manifest, given as the index made from it to a client that names the OCI index: made", async () => {
    const img = await fixtureCache('imgmanifest');
    await pushBlobs(shim.url, 'log/img', img.blobs.values());
    expect((await putManifest(shim.url, 'log/img', 'cache', img.bytes, img.mediaType, { 'x-request-id': 'img-put' })).status).toBe(201);
    expect(await lineOf(shim, 'img-put')).toMatchObject({ action: 'made', status: 201 });
    const res = await fetch(`${shim.url}/v2/log/img/manifests/cache`, { headers: { accept: OCI_INDEX, 'x-request-id': 'img-get' } });
    expect(res.headers.get('content-type')).toBe(OCI_INDEX);
    await res.arrayBuffer();
    expect(await lineOf(shim, 'img-get')).toMatchObject({ action: 'made', status: 200 });
  });

  it('no request line holds the query', () => {
    expect(JSON.stringify(shim.logs)).not.toContain('secret-state');
  });
});

describe('an upstream that refuses the converted manifest', () => {
  it('the warning quotes its code and message; the request line says refused', async () => {
    const registry = await cleanup.track(startRegistry({ policyImageOnly: true }));
    const shim = await cleanup.track(startShim(registry.url));
    const cache = await fixtureCache('index');
    await pushBlobs(registry.url, 'log/policy', cache.blobs.values());
    const res = await putManifest(shim.url, 'log/policy', 'cache', cache.bytes, OCI_INDEX, { 'x-request-id': 'refused-1' });
    expect(res.status).toBe(403);
    const upstreamError = (JSON.parse(res.bytes.toString('utf8')) as { errors: { code: string; message: string }[] }).errors[0];
    const warning = shim.logs.find((l) => l.msg === 'upstream refused the converted manifest');
    expect(warning).toMatchObject({ status: 403, upstreamCode: 'DENIED', upstreamMessage: upstreamError?.message });
    expect(upstreamError?.message).toBe('unknown manifest class for application/vnd.buildkit.cacheconfig.v0');
    expect(await lineOf(shim, 'refused-1')).toMatchObject({ action: 'refused', status: 403 });
    expect((await getManifest(shim.url, 'log/policy', 'cache')).status).toBe(404);
  });
});
