import { describe, expect, it } from 'vitest';
import { DigestMap, type KnownIndex } from '../../src/cache/digest-map.js';

function counting() {
  const events = { hits: 0, misses: 0 };
  return { events, sink: { hit: () => void events.hits++, miss: () => void events.misses++ } };
}

const known = (n: number, size = 100): KnownIndex => ({
  kind: 'index',
  source: 'stored',
  indexDigest: `sha256:i${n}`,
  manifestDigest: `sha256:m${n}`,
  mediaType: 'application/vnd.oci.image.index.v1+json',
  bytes: Buffer.alloc(size, n),
  descriptors: 3,
  rebuildable: true,
});

describe('DigestMap', () => {
  it('maps both ways after a conversion', async () => {
    const { events, sink } = counting();
    const map = new DigestMap(1 << 20, sink);
    map.remember(known(1));
    expect(map.index('sha256:i1')?.manifestDigest).toBe('sha256:m1');
    const manifest = await map.loadManifest('sha256:m1', () => Promise.reject(new Error('must not load')));
    expect(manifest).toEqual({ kind: 'converted', source: 'stored', ref: { indexDigest: 'sha256:i1', indexMediaType: 'application/vnd.oci.image.index.v1+json', indexSize: 100 }, rebuildable: true });
    expect(events).toEqual({ hits: 2, misses: 0 });
  });

  it('answers every concurrent load even when the map is too small to keep them (no "evicted" failure)', async () => {
    // One entry's worth of room: each load in flight evicts the one before it.
    const map = new DigestMap(300, counting().sink);
    const slow = (v: number) => () => new Promise<{ kind: 'plain' }>((resolve) => setTimeout(() => resolve({ kind: 'plain' }), 5 * v));
    const loads = await Promise.allSettled([1, 2, 3, 4].map((n) => map.loadManifest(`sha256:m${n}`, slow(n))));
    expect(loads.map((l) => l.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled']);
  });

  it('shares one load among concurrent misses for a digest', async () => {
    const map = new DigestMap(1 << 20, counting().sink);
    let loads = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const load = async () => {
      loads++;
      await gate;
      return known(2);
    };
    const all = Promise.all(Array.from({ length: 10 }, () => map.loadIndex('sha256:i2', load)));
    release();
    const results = await all;
    expect(loads).toBe(1);
    expect(new Set(results.map((r) => r.indexDigest))).toEqual(new Set(['sha256:i2']));
    // and afterwards the map answers without loading
    await map.loadIndex('sha256:i2', () => Promise.reject(new Error('must not load')));
  });

  it('does not keep a failed load', async () => {
    const map = new DigestMap(1 << 20, counting().sink);
    await expect(map.loadIndex('sha256:i3', () => Promise.reject(new Error('upstream down')))).rejects.toThrow('upstream down');
    await expect(map.loadIndex('sha256:i3', async () => known(3))).resolves.toMatchObject({ indexDigest: 'sha256:i3' });
  });

  it('stays within its byte bound, dropping the least recently used', () => {
    const map = new DigestMap(10_000, counting().sink);
    for (let n = 0; n < 50; n++) map.remember(known(n, 1000));
    expect(map.size).toBeLessThanOrEqual(10_000);
    expect(map.index('sha256:i49')).toBeDefined();
    expect(map.index('sha256:i0')).toBeUndefined();
  });

  it('remembers that a manifest is not a converted cache', async () => {
    const map = new DigestMap(1 << 20, counting().sink);
    let loads = 0;
    const load = async () => {
      loads++;
      return { kind: 'plain' } as const;
    };
    await map.loadManifest('sha256:p', load);
    await map.loadManifest('sha256:p', load);
    expect(loads).toBe(1);
  });

  it('forgets deleted digests', () => {
    const map = new DigestMap(1 << 20, counting().sink);
    map.remember(known(4));
    map.forget('sha256:i4', 'sha256:m4');
    expect(map.index('sha256:i4')).toBeUndefined();
  });

  it('a conversion remembered while a load of the same digest is in flight does not fail that load', async () => {
    const map = new DigestMap(1 << 20, counting().sink);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const loading = map.loadIndex('sha256:i5', async () => {
      await gate;
      return known(5);
    });
    // A push of the same cache finishes first (what lru-cache's fetch() aborted on).
    map.remember(known(5));
    release();
    await expect(loading).resolves.toMatchObject({ indexDigest: 'sha256:i5' });
    expect(map.index('sha256:i5')).toBeDefined();
  });

  it('counts one miss for a lookup and the load that follows it', async () => {
    const { events, sink } = counting();
    const map = new DigestMap(1 << 20, sink);
    expect(map.index('sha256:i6')).toBeUndefined();
    await map.fetchIndex('sha256:i6', async () => known(6));
    expect(map.index('sha256:i6')).toBeDefined();
    expect(events).toEqual({ hits: 1, misses: 1 });
  });

  it('keeps only the pointer of an index over the size it keeps whole, so a few large ones cannot fill the map', () => {
    const map = new DigestMap(64 << 20, counting().sink, 1 << 20);
    map.remember(known(7, (1 << 20) + 1));
    map.remember(known(8, 1 << 20));
    expect(map.index('sha256:i7')).toBeUndefined();
    expect(map.manifestOf('sha256:i7')).toMatchObject({ manifestDigest: 'sha256:m7', ref: { indexDigest: 'sha256:i7', indexMediaType: 'application/vnd.oci.image.index.v1+json', indexSize: (1 << 20) + 1 }, rebuildable: true });
    expect(map.index('sha256:i8')?.bytes.length).toBe(1 << 20);
    expect(map.size).toBeLessThan((1 << 20) + 2048);
  });
});
