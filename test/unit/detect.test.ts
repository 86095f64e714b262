import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { classifyManifest, nestingExceeds, nestsDeeperThan } from '../../src/cache/detect.js';
import { fixturesDir } from '../support/oci-archive.js';

const fixture = (name: string) => readFileSync(join(fixturesDir(), name));
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const CONFIG = 'application/vnd.buildkit.cacheconfig.v0';
const D1 = `sha256:${'a'.repeat(64)}`;
const D2 = `sha256:${'b'.repeat(64)}`;

const index = (manifests: unknown[], extra: Record<string, unknown> = {}) =>
  Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests, ...extra }));
const layer = { mediaType: LAYER, digest: D1, size: 10 };
const config = { mediaType: CONFIG, digest: D2, size: 5 };

describe('classifyManifest', () => {
  it.each(['index.json', 'dlist.json'])('finds the cache in the fixture %s', (file) => {
    const detection = classifyManifest(fixture(file), undefined);
    expect(detection.kind).toBe('cache');
    if (detection.kind !== 'cache') return;
    expect(detection.index.config.digest).toBe('sha256:d8e9a41d19ace8caf0af981f13cfcec9ae80d197163bfd0726b7ca75b764bffb');
    expect(detection.index.layers.map((l) => l.size)).toEqual([123, 112]);
  });

  it('takes the media type from Content-Type when the body has none', () => {
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [layer, config] }));
    expect(classifyManifest(body, `${OCI_INDEX}; charset=utf-8`).kind).toBe('cache');
    expect(classifyManifest(body, 'application/json').kind).toBe('not-cache');
  });

  it.each([
    ['an image manifest', fixture('dk-manifest.json'), undefined],
    ["BuildKit's image-manifest cache", fixture('imgmanifest.json'), undefined],
    ['a multi-arch index', index([{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D1, size: 1, platform: { os: 'linux', architecture: 'amd64' } }]), undefined],
    ['an index mixing a manifest and blobs', index([{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D1, size: 1 }, config]), undefined],
    ['an empty index', index([]), undefined],
    ['an index of artifacts that are not layers', index([{ mediaType: 'application/vnd.example.sbom', digest: D1, size: 1 }]), undefined],
    ['non-JSON with a non-index Content-Type', Buffer.from('<html>'), 'text/html'],
    ['a JSON array', Buffer.from('[]'), OCI_INDEX],
  ])('passes %s through', (_what, body, contentType) => {
    expect(classifyManifest(body, contentType)).toEqual({ kind: 'not-cache' });
  });

  it.each([
    ['invalid JSON with an index Content-Type', Buffer.from('{"schemaVersion":2,'), OCI_INDEX, /not valid JSON/],
    ['invalid JSON that names the cacheconfig type', Buffer.from(`{"manifests":[{"mediaType":"${CONFIG}"`), undefined, /not valid JSON/],
    ['no cacheconfig entry', index([layer]), undefined, /exactly one application\/vnd.buildkit.cacheconfig.v0 entry, found 0/],
    ['two cacheconfig entries', index([layer, config, config]), undefined, /found 2/],
    ['a bad digest', index([{ ...layer, digest: 'sha256:xyz' }, config]), undefined, /manifests\[0\]\.digest "sha256:xyz" is not a valid/],
    ['a short sha256 digest', index([layer, { ...config, digest: 'sha256:abcd' }]), undefined, /manifests\[1\]\.digest/],
    ['an unknown digest algorithm', index([{ ...layer, digest: `md5:${'a'.repeat(32)}` }, config]), undefined, /not a valid sha256 or sha512/],
    ['a negative size', index([{ ...layer, size: -1 }, config]), undefined, /manifests\[0\]\.size -1 is not a non-negative integer/],
    ['a fractional size', index([{ ...layer, size: 1.5 }, config]), undefined, /size 1.5/],
    ['a size given as a string', index([{ ...layer, size: '10' }, config]), undefined, /size "10"/],
    ['a size past 2^53', index([{ ...layer, size: 2 ** 60 }, config]), undefined, /size/],
    ['a missing digest', index([{ mediaType: LAYER, size: 1 }, config]), undefined, /digest is missing/],
    ['an entry that is not an object', index([layer, config, 'x']), undefined, /manifests\[2\] is not an object/],
    ['non-string annotations', index([{ ...layer, annotations: { a: 1 } }, config]), undefined, /annotations must map strings to strings/],
    ['schemaVersion 1', index([layer, config], { schemaVersion: 1 }), undefined, /schemaVersion must be 2/],
  ])('refuses %s, naming the problem', (_what, body, contentType, detail) => {
    const detection = classifyManifest(body, contentType);
    expect(detection.kind).toBe('invalid');
    expect(detection.kind === 'invalid' && detection.detail).toMatch(detail);
  });

  it('names every bad entry, up to ten', () => {
    const bad = Array.from({ length: 12 }, () => ({ ...layer, size: -1 }));
    const detection = classifyManifest(index([...bad, config]), undefined);
    expect(detection.kind === 'invalid' && detection.detail.split('; ')).toHaveLength(10);
  });
});

describe('deeply nested JSON', () => {
  const deep = (n: number) => Buffer.from(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":${'['.repeat(n)}${']'.repeat(n)},"size":1}]}`);

  it('is a malformed cache when it claims to be an index, whatever the depth, without running out of stack', () => {
    for (const n of [100, 10_000, 1_000_000]) {
      const detection = classifyManifest(deep(n), 'application/vnd.oci.image.index.v1+json');
      expect(detection).toEqual({ kind: 'invalid', detail: 'the JSON nests deeper than 64 levels; a cache index nests 4' });
    }
  });

  it('is left to the upstream when it is not an index', () => {
    const body = Buffer.from(`{"a":${'['.repeat(5000)}${']'.repeat(5000)}}`);
    expect(classifyManifest(body, 'application/vnd.oci.image.manifest.v1+json')).toEqual({ kind: 'not-cache' });
  });

  it('counts brackets inside strings as text', () => {
    expect(nestsDeeperThan(Buffer.from(`{"a":"${'['.repeat(100)}\\"${'{'.repeat(100)}"}`), 3)).toBe(false);
    expect(nestsDeeperThan(Buffer.from('[[[[]]]]'), 3)).toBe(true);
    expect(nestsDeeperThan(Buffer.from('[[[]]]'), 3)).toBe(false);
  });

  it('measures a parsed document as the text measures it', () => {
    for (const text of ['[[[[]]]]', '[[[]]]', '{"a":[{"b":{}}]}', '{"a":[{"b":[]}],"c":"[[[["}', '[1,[2,[3]],{"x":{"y":null}}]', '7']) {
      expect(nestingExceeds(JSON.parse(text), 3)).toBe(nestsDeeperThan(Buffer.from(text), 3));
    }
    expect(nestingExceeds(JSON.parse('[[[[]]]]'), 3)).toBe(true);
  });

  it('is refused when valid, deep and a cache, however the depth is reached', () => {
    const body = Buffer.from(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.buildkit.cacheconfig.v0","digest":"sha256:${'a'.repeat(64)}","size":1,"x":${'{"y":'.repeat(70)}1${'}'.repeat(70)}}]}`);
    expect(classifyManifest(body, undefined)).toEqual({ kind: 'invalid', detail: 'the JSON nests deeper than 64 levels; a cache index nests 4' });
  });

  it('quotes a huge value in a problem briefly', () => {
    const body = Buffer.from(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.buildkit.cacheconfig.v0","digest":"${'a'.repeat(100_000)}","size":1}]}`);
    const detection = classifyManifest(body, undefined);
    expect(detection.kind).toBe('invalid');
    expect(detection.kind === 'invalid' && detection.detail.length).toBeLessThan(300);
  });
});
