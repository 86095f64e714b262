// Blob downloads that registries send elsewhere (simulated in front of the real registry):
// clients get the redirect unchanged; regshim follows it only for its own index fetch,
// and then without the client's credentials.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getManifest, pushBlob, pushBlobs, putManifest } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { fixtureCache } from '../support/oci-archive.js';
import { startRedirectingGate } from '../support/redirecting-gate.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { startShim } from '../support/regshim.js';

const cleanup = new Cleanup();
let registry: Registry;

beforeAll(async () => {
  registry = await cleanup.track(startRegistry());
  const cache = await fixtureCache('index');
  await pushBlobs(registry.url, 'r/app', cache.blobs.values());
  // Stored through a plain regshim, so the registry holds the converted manifest and the index blob.
  const writer = await cleanup.track(startShim(registry.url));
  expect((await putManifest(writer.url, 'r/app', 'cache', cache.bytes, cache.mediaType)).status).toBe(201);
});

afterAll(() => cleanup.run());

describe.each(['presigned', 'relative'] as const)('%s redirects', (mode) => {
  it('reach the client unchanged, never followed by regshim', async () => {
    const gate = await cleanup.track(startRedirectingGate(registry.url, mode));
    const shim = await cleanup.track(startShim(gate.url));
    const digest = await pushBlob(registry.url, 'r/app', Buffer.from(`blob for ${mode}`));
    const res = await fetch(`${shim.url}/v2/r/app/blobs/${digest}`, { redirect: 'manual' });
    expect(res.status).toBe(mode === 'presigned' ? 307 : 302);
    const location = res.headers.get('location');
    expect(location).toBe(mode === 'presigned' ? `http://127.0.0.2:${location?.split(':')[2]?.split('/')[0]}/bucket/v2/r/app/blobs/${digest}?X-Amz-Signature=sig` : `/relative-store/v2/r/app/blobs/${digest}`);
    expect(gate.storeHits).toEqual([]);
  });

  it('are followed for the index blob, without the client credentials on another host', async () => {
    const gate = await cleanup.track(startRedirectingGate(registry.url, mode));
    const shim = await cleanup.track(startShim(gate.url));
    const cache = await fixtureCache('index');
    const got = await getManifest(shim.url, 'r/app', 'cache', { headers: { authorization: 'Bearer t' } });
    expect(got.status).toBe(200);
    expect(got.bytes.equals(cache.bytes)).toBe(true);
    // presigned: another host, so no credentials; relative: the registry itself, so the client's
    expect(gate.storeHits).toEqual([{ path: `/v2/r/app/blobs/${cache.digest}`, authorization: mode === 'relative' }]);
  });
});
