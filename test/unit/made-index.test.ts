// The index made from BuildKit's image-manifest cache (Part 1 of serving old importers): the
// real BuildKit cache in both forms, and generated caches both ways.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sha256, toImageManifest } from '../../src/cache/convert.js';
import { type CacheIndex, classifyManifest } from '../../src/cache/detect.js';
import { goDescriptor, goMarshal } from '../../src/cache/go-json.js';
import { buildkitManifestOfIndex, indexOfBuildkitManifest } from '../../src/cache/forms/made-index.js';
import { DEFAULT_INDEX_LAYER_MEDIA_TYPE } from '../../src/registry/media-types.js';
import { cacheIndex } from '../support/cache-gen.js';
import { fixturesDir } from '../support/oci-archive.js';

const fixture = (name: string) => readFileSync(join(fixturesDir(), name));
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

function parseCache(bytes: Buffer): CacheIndex {
  const detection = classifyManifest(bytes, undefined);
  if (detection.kind !== 'cache') throw new Error('not a cache');
  return detection.index;
}

describe('indexOfBuildkitManifest', () => {
  it("makes from BuildKit's image-manifest cache exactly the index BuildKit wrote for the same build", () => {
    const made = indexOfBuildkitManifest(fixture('imgmanifest.json'));
    expect(made?.bytes.equals(fixture('index.json'))).toBe(true);
    expect(made?.digest).toBe(sha256(fixture('index.json')));
  });

  it('and back: the manifest of the made index is the manifest BuildKit wrote', () => {
    expect(buildkitManifestOfIndex(parseCache(fixture('index.json')), fixture('index.json'))?.bytes.equals(fixture('imgmanifest.json'))).toBe(true);
  });

  it('carries a json.Encoder newline over, both ways', () => {
    const bare = fixture('imgmanifest.json').subarray(0, -1);
    expect(indexOfBuildkitManifest(bare)?.bytes.equals(fixture('index.json').subarray(0, -1))).toBe(true);
  });

  it('is an exact inverse for every generated OCI cache with the cacheconfig last', () => {
    fc.assert(
      fc.property(cacheIndex(40, 1), (gen) => {
        fc.pre(gen.family === 'oci' && gen.configPosition === gen.layers.length);
        const manifest = Buffer.from(goMarshal({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: goDescriptor(gen.config), layers: gen.layers.map(goDescriptor) }));
        const made = indexOfBuildkitManifest(manifest);
        expect(made?.bytes.equals(gen.bytes)).toBe(true);
        expect(buildkitManifestOfIndex(parseCache(gen.bytes), gen.bytes)?.bytes.equals(manifest)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it.each([
    ['an index', fixture('index.json')],
    ['a manifest regshim converted', toImageManifest(parseCache(fixture('index.json')), fixture('index.json'), DEFAULT_INDEX_LAYER_MEDIA_TYPE).bytes],
    ['an image', fixture('dk-manifest.json')],
    ['the manifest with two newlines', Buffer.concat([fixture('imgmanifest.json'), Buffer.from('\n')])],
    ['the manifest indented', Buffer.from(JSON.stringify(JSON.parse(fixture('imgmanifest.json').toString()), null, 1))],
    ['the manifest with annotations', Buffer.from(fixture('imgmanifest.json').toString().replace(/}\n$/, ',"annotations":{"a":"b"}}\n'))],
    ['the manifest with an artifactType', Buffer.from(fixture('imgmanifest.json').toString().replace('"config"', '"artifactType":"application/x","config"'))],
    ['the manifest without layers', Buffer.from(fixture('imgmanifest.json').toString().replace(/"layers":\[.*\]/, '"layers":[]'))],
    ['a manifest with a bad layer digest', Buffer.from(fixture('imgmanifest.json').toString().replace('sha256:75b5', 'sha256:zz'))],
    ['not JSON', Buffer.from('{"mediaType":"application/vnd.buildkit.cacheconfig.v0"')],
  ])('leaves %s alone', (_what, bytes) => {
    expect(indexOfBuildkitManifest(bytes)).toBeUndefined();
  });

  it('has no manifest for a Docker list or an index whose cacheconfig is not last', () => {
    expect(buildkitManifestOfIndex(parseCache(fixture('dlist.json')), fixture('dlist.json'))).toBeUndefined();
    const doc = JSON.parse(fixture('index.json').toString()) as { manifests: unknown[] };
    doc.manifests.unshift(doc.manifests.pop());
    const moved = Buffer.from(JSON.stringify(doc));
    expect(buildkitManifestOfIndex(parseCache(moved), moved)).toBeUndefined();
  });
});
