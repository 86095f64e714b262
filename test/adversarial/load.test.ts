// Load a busy CI fleet puts on one regshim: writers and readers of one tag at once, and
// bursts that must not become a connection storm at the registry.
import { createHash } from 'node:crypto';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { goMarshal } from '../../src/cache/go-json.js';
import { ALL_MANIFEST_TYPES, getManifest, pushBlobs, putManifest } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { type CountingProxy, startCountingProxy } from '../support/counting-proxy.js';
import { type FixtureCache, fixtureCache } from '../support/oci-archive.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { type RunningShim, startShim } from '../support/regshim.js';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

const cleanup = new Cleanup();
let registry: Registry;
let index: FixtureCache;

beforeAll(async () => {
  registry = await cleanup.track(startRegistry());
  index = await fixtureCache('index');
});

afterAll(() => cleanup.run());

/** A cache that differs from the fixture in one annotation: same blobs, its own digest. */
function variant(tag: string): Buffer {
  const doc = JSON.parse(index.bytes.toString()) as { manifests: { annotations?: Record<string, string> }[] };
  const first = doc.manifests[0];
  if (first?.annotations) first.annotations['buildkit/createdat'] = tag;
  return Buffer.from(goMarshal(doc));
}

/** regshim's own failures are logged as such; the registry's pass through without that line. */
const ownFailures = (shim: RunningShim) => shim.logs.filter((l) => l.msg === 'request failed' || (typeof l.status === 'number' && l.status >= 500 && l.upstreamMs === undefined));

describe('32 writers and 32 readers on one tag for 10 s', () => {
  it('every read hashes to its digest, regshim adds no 5xx, and every 201 reads back byte-exact from a fresh replica', async () => {
    const repo = 'load/shared';
    await pushBlobs(registry.url, repo, index.blobs.values());
    const shim = await cleanup.track(startShim(registry.url, { logLevel: 'info' }));
    expect((await putManifest(shim.url, repo, 'cache', index.bytes, OCI_INDEX)).status).toBe(201);
    const pushed = new Map<string, Buffer>();
    const statuses = { writes: new Map<number, number>(), reads: new Map<number, number>() };
    const bump = (m: Map<number, number>, s: number) => m.set(s, (m.get(s) ?? 0) + 1);
    const mismatches: string[] = [];
    const until = performance.now() + 10_000;
    const writer = async (w: number) => {
      for (let n = 0; performance.now() < until; n++) {
        const bytes = variant(`w${w}-${n}`);
        const put = await putManifest(shim.url, repo, 'cache', bytes, OCI_INDEX);
        bump(statuses.writes, put.status);
        if (put.status === 201) pushed.set(sha256(bytes), bytes);
      }
    };
    const reader = async () => {
      while (performance.now() < until) {
        const got = await getManifest(shim.url, repo, 'cache');
        bump(statuses.reads, got.status);
        if (got.status === 200 && sha256(got.bytes) !== got.headers.get('docker-content-digest')) mismatches.push(String(got.headers.get('docker-content-digest')));
      }
    };
    await Promise.all([...Array.from({ length: 32 }, (_, w) => writer(w)), ...Array.from({ length: 32 }, () => reader())]);
    expect(mismatches).toEqual([]);
    expect(ownFailures(shim)).toEqual([]);
    // The registry's own 500s under this load may pass through; nothing else is acceptable.
    expect([...statuses.reads.keys()].filter((s) => s !== 200 && s !== 500)).toEqual([]);
    expect([...statuses.writes.keys()].filter((s) => s !== 201 && s !== 500)).toEqual([]);
    expect(pushed.size).toBeGreaterThan(32);

    const fresh = await cleanup.track(startShim(registry.url));
    const digests = [...pushed.keys()];
    const wrong: string[] = [];
    for (let i = 0; i < digests.length; i += 16) {
      await Promise.all(digests.slice(i, i + 16).map(async (digest) => {
        const got = await getManifest(fresh.url, repo, digest);
        if (got.status !== 200 || !got.bytes.equals(pushed.get(digest) as Buffer)) wrong.push(`${digest}: ${got.status}`);
      }));
    }
    expect(wrong).toEqual([]);
  }, 180_000);
});

describe('one new cache pushed by many builds at once', () => {
  // distribution itself races on identical concurrent uploads and manifest PUTs (it rewrites
  // the same files in place) and fails some with 400 or 500. Those answers pass back
  // unchanged, as they would directly; regshim retries a lost index-blob upload once, and
  // must add no failure of its own.
  it("every failure is the registry's own answer, most pushes succeed, and the tag holds the cache", async () => {
    const repo = 'load/same';
    await pushBlobs(registry.url, repo, index.blobs.values());
    const wire = await cleanup.track(startCountingProxy(registry.url));
    const shim = await cleanup.track(startShim(wire.url, { logLevel: 'warn' }));
    for (let round = 0; round < 5; round++) {
      const bytes = variant(`same-${round}`);
      const answers = await Promise.all(Array.from({ length: 24 }, () => putManifest(shim.url, repo, `cache-${round}`, bytes, OCI_INDEX)));
      const upstream = wire.requests.map((r) => r.status);
      for (const failed of answers.filter((r) => r.status !== 201)) {
        const i = upstream.indexOf(failed.status);
        expect(i, `${failed.status} ${failed.bytes.toString()}`).toBeGreaterThanOrEqual(0);
        upstream.splice(i, 1);
      }
      wire.requests.length = 0;
      expect(answers.filter((r) => r.status === 201).length).toBeGreaterThan(12);
      expect((await getManifest(shim.url, repo, `cache-${round}`)).bytes.equals(bytes)).toBe(true);
    }
    expect(shim.logs.filter((l) => l.msg === 'request failed')).toEqual([]);
  });
});

describe('upstream connections are bounded (--upstream-connections)', () => {
  let wire: CountingProxy;
  let shim: RunningShim;
  // Each request on its own connection, as a fleet of clients would.
  const oneShot = new Agent({ pipelining: 0, connections: 2000 });

  beforeAll(async () => {
    wire = await cleanup.track(startCountingProxy(registry.url));
    shim = await cleanup.track(startShim(wire.url, { upstreamConnections: '8', logLevel: 'warn' }));
    await pushBlobs(registry.url, 'load/conns', index.blobs.values());
    expect((await putManifest(shim.url, 'load/conns', 'cache', index.bytes, OCI_INDEX)).status).toBe(201);
  });

  afterAll(() => oneShot.close());

  it('1,000 concurrent HEADs of a cache tag use at most 8 connections, and all succeed', async () => {
    wire.sockets.peak = wire.sockets.open;
    const results = await Promise.all(Array.from({ length: 1000 }, () =>
      fetch(`${shim.url}/v2/load/conns/manifests/cache`, { method: 'HEAD', headers: { accept: ALL_MANIFEST_TYPES }, dispatcher: oneShot } as RequestInit).then((r) => r.status)));
    expect(results.filter((s) => s !== 200)).toEqual([]);
    expect(wire.sockets.peak).toBeLessThanOrEqual(8);
  });

  it('200 concurrent blob GETs through the pass-through use at most 8 connections, and all succeed', async () => {
    const [digest, blob] = [...index.blobs.entries()][0] as [string, Buffer];
    wire.sockets.peak = wire.sockets.open;
    const bodies = await Promise.all(Array.from({ length: 200 }, () =>
      fetch(`${shim.url}/v2/load/conns/blobs/${digest}`, { dispatcher: oneShot } as RequestInit).then(async (r) => Buffer.from(await r.arrayBuffer()))));
    expect(bodies.filter((b) => !b.equals(blob))).toEqual([]);
    // Eight for streams, plus the idle ones of regshim's own pool, which is bounded the same way.
    expect(wire.sockets.peak).toBeLessThanOrEqual(16);
  });
});
