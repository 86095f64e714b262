import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BUILDKIT_IMPORT_LIMIT,
  INDEX_DIGEST_ANNOTATION,
  INDEX_MEDIA_TYPE_ANNOTATION,
  importLimitProblems,
  isRebuildable,
  ociLayerType,
  readConvertedManifest,
  rebuildIndex,
  registryLimitProblems,
  restoreIndex,
  sha256,
  toImageManifest,
} from '../../src/cache/convert.js';
import { type CacheIndex, classifyManifest } from '../../src/cache/detect.js';
import { DEFAULT_INDEX_LAYER_MEDIA_TYPE } from '../../src/registry/media-types.js';
import { cacheIndex } from '../support/cache-gen.js';
import { fixturesDir } from '../support/oci-archive.js';

const fixture = (name: string) => readFileSync(join(fixturesDir(), name));
const OWN = DEFAULT_INDEX_LAYER_MEDIA_TYPE;

function parseCache(bytes: Buffer): CacheIndex {
  const detection = classifyManifest(bytes, undefined);
  if (detection.kind !== 'cache') throw new Error(`not a cache: ${JSON.stringify(detection)}`);
  return detection.index;
}

describe('toImageManifest on the real BuildKit cache', () => {
  const imgmanifest = JSON.parse(fixture('imgmanifest.json').toString()) as { config: unknown; layers: unknown[] };

  it.each(['index.json', 'dlist.json'])('%s becomes the image-manifest form BuildKit writes, plus the index layer', (file) => {
    const bytes = fixture(file);
    const converted = toImageManifest(parseCache(bytes), bytes, OWN);
    const { config, layers } = converted.manifest;
    expect(config).toEqual(imgmanifest.config);
    expect(layers.slice(0, -1)).toEqual(imgmanifest.layers);
    expect(layers.at(-1)).toEqual({ mediaType: OWN, digest: sha256(bytes), size: bytes.length });
    expect(converted.manifest.annotations[INDEX_DIGEST_ANNOTATION]).toBe(sha256(bytes));
    expect(converted.digest).toBe(sha256(converted.bytes));
  });

  it('keeps the index media type, so a Docker list comes back as a Docker list', () => {
    const bytes = fixture('dlist.json');
    const converted = toImageManifest(parseCache(bytes), bytes, OWN);
    expect(converted.manifest.annotations[INDEX_MEDIA_TYPE_ANNOTATION]).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
    expect(readConvertedManifest(converted.bytes)).toEqual({
      indexDigest: sha256(bytes),
      indexMediaType: 'application/vnd.docker.distribution.manifest.list.v2+json',
      indexSize: bytes.length,
    });
  });

  it('round-trips the fixture index byte for byte', () => {
    const bytes = fixture('index.json');
    const converted = toImageManifest(parseCache(bytes), bytes, OWN);
    const ref = readConvertedManifest(converted.bytes);
    expect(ref).toBeDefined();
    expect(restoreIndex(ref!, Buffer.from(bytes)).equals(bytes)).toBe(true);
  });

  it('is deterministic, so any replica derives the same manifest digest', () => {
    const bytes = fixture('index.json');
    expect(toImageManifest(parseCache(bytes), bytes, OWN).digest).toBe(toImageManifest(parseCache(bytes), Buffer.from(bytes), OWN).digest);
  });

  it('uses the configured media type for the index layer', () => {
    const bytes = fixture('index.json');
    const converted = toImageManifest(parseCache(bytes), bytes, 'application/vnd.example.custom');
    expect(converted.manifest.layers.at(-1)?.mediaType).toBe('application/vnd.example.custom');
    // Found by digest, so a manifest written under another type still restores.
    expect(readConvertedManifest(converted.bytes)?.indexDigest).toBe(sha256(bytes));
  });
});

describe('readConvertedManifest', () => {
  it.each([
    ['a plain image manifest', fixture('dk-manifest.json')],
    ["BuildKit's own image-manifest cache", fixture('imgmanifest.json')],
    ['the index itself', fixture('index.json')],
    ['not JSON', Buffer.from('{nope')],
    ['JSON null', Buffer.from('null')],
  ])('ignores %s', (_what, bytes) => {
    expect(readConvertedManifest(bytes)).toBeUndefined();
  });

  it('ignores a manifest whose annotation names no layer', () => {
    const bytes = fixture('index.json');
    const converted = toImageManifest(parseCache(bytes), bytes, OWN);
    const tampered = { ...converted.manifest, layers: converted.manifest.layers.slice(0, -1) };
    expect(readConvertedManifest(Buffer.from(JSON.stringify(tampered)))).toBeUndefined();
  });

  it.each([
    [INDEX_MEDIA_TYPE_ANNOTATION, 'text/html\r\nX-Injected: 1'],
    [INDEX_MEDIA_TYPE_ANNOTATION, 'application/vnd.oci.image.manifest.v1+json'],
    [INDEX_DIGEST_ANNOTATION, 'sha256:not-hex\r\n'],
  ])('ignores a manifest whose %s is %j (it would become a response header)', (annotation, value) => {
    const bytes = fixture('index.json');
    const converted = toImageManifest(parseCache(bytes), bytes, OWN);
    const tampered = { ...converted.manifest, annotations: { ...converted.manifest.annotations, [annotation]: value } };
    expect(readConvertedManifest(Buffer.from(JSON.stringify(tampered)))).toBeUndefined();
  });
});

describe('restoreIndex', () => {
  const bytes = fixture('index.json');
  const ref = { indexDigest: sha256(bytes), indexMediaType: 'application/vnd.oci.image.index.v1+json', indexSize: bytes.length };

  it('refuses bytes with another digest', () => {
    const wrong = Buffer.from(bytes);
    wrong[10] = wrong[10]! ^ 1;
    expect(() => restoreIndex(ref, wrong)).toThrow(/has digest sha256:/);
  });

  it('refuses bytes of another length', () => {
    expect(() => restoreIndex({ ...ref, indexSize: bytes.length + 1 }, bytes)).toThrow(/expected/);
  });
});

describe('rebuildIndex: the index from its manifest alone', () => {
  it.each(['index.json', 'dlist.json'])('rebuilds the real %s byte for byte', (file) => {
    const bytes = fixture(file);
    expect(rebuildIndex(toImageManifest(parseCache(bytes), bytes, OWN).bytes)?.equals(bytes)).toBe(true);
  });

  it('rebuilds every generated index whose cacheconfig is last, and no other', () => {
    fc.assert(
      fc.property(cacheIndex(200), (gen) => {
        const converted = toImageManifest(parseCache(gen.bytes), gen.bytes, OWN);
        const rebuilt = rebuildIndex(converted.bytes);
        if (gen.configPosition === gen.layers.length) expect(rebuilt?.equals(gen.bytes)).toBe(true);
        else expect(rebuilt).toBeUndefined();
        expect(isRebuildable(converted, gen.bytes)).toBe(rebuilt !== undefined);
      }),
      { numRuns: 200 },
    );
  });

  it.each([
    ['written with spaces', (b: Buffer) => Buffer.from(JSON.stringify(JSON.parse(b.toString()), null, 1))],
    ['with keys in another order', (b: Buffer) => Buffer.from(b.toString().replace('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",', '{"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2,'))],
  ])('cannot rebuild an index %s (it says so instead of guessing)', (_name, reshape) => {
    const bytes = reshape(fixture('index.json'));
    const converted = toImageManifest(parseCache(bytes), bytes, OWN);
    expect(rebuildIndex(converted.bytes)).toBeUndefined();
    expect(isRebuildable(converted, bytes)).toBe(false);
  });

  it.each(['index.json', 'dlist.json'])('rebuilds the real %s without its newline, as json.Marshal writes it', (file) => {
    const withNewline = fixture(file); // json.Encoder's
    const bytes = withNewline.subarray(0, withNewline.length - 1);
    const converted = toImageManifest(parseCache(bytes), bytes, OWN);
    expect(rebuildIndex(converted.bytes)?.equals(bytes)).toBe(true);
    expect(isRebuildable(converted, bytes)).toBe(true);
  });

  it('cannot rebuild from a manifest regshim did not write, or from garbage', () => {
    expect(rebuildIndex(fixture('imgmanifest.json'))).toBeUndefined();
    expect(rebuildIndex(Buffer.from('{"layers": 7'))).toBeUndefined();
  });
});

describe('toImageManifest with sha512', () => {
  it('names and stores the index by sha512 when the client pushed by sha512', () => {
    const bytes = fixture('index.json');
    const converted = toImageManifest(parseCache(bytes), bytes, OWN, 'sha512');
    expect(converted.indexBlob.digest).toMatch(/^sha512:[0-9a-f]{128}$/);
    expect(converted.manifest.annotations[INDEX_DIGEST_ANNOTATION]).toBe(converted.indexBlob.digest);
    expect(readConvertedManifest(converted.bytes)?.indexDigest).toBe(converted.indexBlob.digest);
    expect(rebuildIndex(converted.bytes)?.equals(bytes)).toBe(true);
  });
});

describe('ociLayerType', () => {
  it.each([
    ['application/vnd.docker.image.rootfs.diff.tar.gzip', 'application/vnd.oci.image.layer.v1.tar+gzip'],
    ['application/vnd.docker.image.rootfs.diff.tar', 'application/vnd.oci.image.layer.v1.tar'],
    ['application/vnd.docker.image.rootfs.diff.tar.zstd', 'application/vnd.oci.image.layer.v1.tar+zstd'],
    ['application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip'],
    ['application/vnd.oci.image.layer.v1.tar+zstd', 'application/vnd.oci.image.layer.v1.tar+zstd'],
  ])('%s -> %s', (docker, oci) => {
    expect(ociLayerType(docker)).toBe(oci);
  });
});

describe('importLimitProblems', () => {
  it('is empty for the fixture', () => {
    const bytes = fixture('index.json');
    const index = parseCache(bytes);
    expect(importLimitProblems(index, bytes, toImageManifest(index, bytes, OWN))).toEqual([]);
  });

  it('names an index over 1 MiB and a cacheconfig over 1 MiB', () => {
    const bytes = fixture('index.json');
    const index = parseCache(bytes);
    const big = { ...index, config: { ...index.config, size: BUILDKIT_IMPORT_LIMIT + 1 } };
    const padded = Buffer.alloc(BUILDKIT_IMPORT_LIMIT + 1);
    const problems = importLimitProblems(big, padded, toImageManifest(index, bytes, OWN));
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/cache index is 1048577 bytes/);
    expect(problems[1]).toMatch(/cacheconfig is 1048577 bytes/);
  });
});

describe('registryLimitProblems', () => {
  it('names too many layers and too many bytes, and nothing for the fixture', () => {
    const bytes = fixture('index.json');
    const index = parseCache(bytes);
    const fits = toImageManifest(index, bytes, OWN);
    expect(registryLimitProblems(fits.bytes, fits.manifest.layers.length)).toEqual([]);
    const many = { ...index, layers: Array.from({ length: 600 }, (_, i) => ({ ...index.layers[0]!, annotations: { pad: 'x'.repeat(i === 0 ? 4_300_000 : 1) } })) };
    const over = toImageManifest(many, bytes, OWN);
    const problems = registryLimitProblems(over.bytes, over.manifest.layers.length);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toBe('601 layers: ECR refuses more than about 500');
    expect(problems[1]).toMatch(/^\d+ bytes: ECR and others refuse manifests over 4194304$/);
  });
});

describe('conversion properties on generated indexes', () => {
  it('holds for the largest caches (4,500 to 5,000 descriptors)', () => {
    fc.assert(
      fc.property(cacheIndex(5000, 4500), (gen) => {
        const index = parseCache(gen.bytes);
        const converted = toImageManifest(index, gen.bytes, OWN);
        expect(converted.manifest.layers).toHaveLength(gen.layers.length + 1);
        expect(restoreIndex(readConvertedManifest(converted.bytes)!, gen.bytes).equals(gen.bytes)).toBe(true);
      }),
      { numRuns: 5 },
    );
  });

  it('converting and restoring gives back the same bytes, and loses no descriptor', () => {
    fc.assert(
      fc.property(cacheIndex(60), (gen) => {
        const index = parseCache(gen.bytes);
        const converted = toImageManifest(index, gen.bytes, OWN);
        const ref = readConvertedManifest(converted.bytes);
        expect(ref).toEqual({ indexDigest: sha256(gen.bytes), indexMediaType: index.mediaType, indexSize: gen.bytes.length });
        expect(restoreIndex(ref!, gen.bytes).equals(gen.bytes)).toBe(true);
        // config = the cacheconfig; layers = every other entry in order, OCI-typed, annotations kept
        expect(converted.manifest.config).toEqual(JSON.parse(JSON.stringify(gen.config)));
        const layers = converted.manifest.layers.slice(0, -1);
        expect(layers.map((l) => l.digest)).toEqual(gen.layers.map((l) => l.digest));
        expect(layers.map((l) => l.size)).toEqual(gen.layers.map((l) => l.size));
        expect(layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar+gzip')).toBe(true);
        expect(layers.map((l) => l.annotations ?? {})).toEqual(gen.layers.map((l) => l.annotations ?? {}));
        expect(JSON.parse(converted.bytes.toString())).toEqual(converted.manifest);
        // composed from parts, yet the very bytes JSON.stringify gives (manifests already stored keep their digests)
        expect(converted.bytes.toString()).toBe(JSON.stringify(converted.manifest));
      }),
      { numRuns: 200 },
    );
  });
});
