// inspect's pure parts: which form a body is, the facts and problems of a report, the
// records that lose layers, and the references it takes. No I/O.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { toImageManifest } from '../../src/cache/convert.js';
import { buildStoredForm } from '../../src/cache/forms/stored-forms.js';
import { classifyManifest } from '../../src/cache/detect.js';
import { goDescriptor, goMarshal } from '../../src/cache/go-json.js';
import { type InspectInput, inspectFacts, isHealthy } from '../../src/inspect/facts.js';
import { recognise } from '../../src/inspect/forms.js';
import { recordsLosingLayers } from '../../src/inspect/records.js';
import { parseCacheReference } from '../../src/inspect/reference.js';
import { DEFAULT_INDEX_LAYER_MEDIA_TYPE, OCI_INDEX } from '../../src/registry/media-types.js';
import { upstreamRefusalOf } from '../../src/registry/upstream-refusal.js';
import { fixturesDir } from '../support/oci-archive.js';

const fixture = (name: string) => readFileSync(join(fixturesDir(), name));
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

function converted(indexBytes: Buffer) {
  const detection = classifyManifest(indexBytes, undefined);
  if (detection.kind !== 'cache') throw new Error('not a cache');
  return toImageManifest(detection.index, indexBytes, DEFAULT_INDEX_LAYER_MEDIA_TYPE).bytes;
}

function fetched(bytes: Buffer) {
  const found = recognise(bytes);
  if (!found) throw new Error('not recognised');
  return { ...found, bytes };
}

/** An index of `n` layers (each with a createdat) and a cacheconfig of `configSize` bytes. */
function bigIndex(n: number, configSize = 100): Buffer {
  const layers = Array.from({ length: n }, (_, i) =>
    goDescriptor({ mediaType: LAYER, digest: `sha256:${i.toString(16).padStart(64, '0')}`, size: 1000, annotations: { 'buildkit/createdat': `2026-01-01T00:00:${String(i % 60).padStart(2, '0')}Z` } }),
  );
  const config = goDescriptor({ mediaType: 'application/vnd.buildkit.cacheconfig.v0', digest: `sha256:${'c'.repeat(64)}`, size: configSize });
  return Buffer.from(goMarshal({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [...layers, config] }));
}

describe('recognise: which cache form a body is', () => {
  it.each([
    ['index.json', 'index'],
    ['dlist.json', 'docker-list'],
    ['imgmanifest.json', 'buildkit-image-manifest'],
  ])('%s is %s', (file, form) => {
    expect(recognise(fixture(file))?.form.id).toBe(form);
  });

  it("regshim's stored manifest is its own form, names the index it restores, and its layers exclude the index layer", () => {
    const found = recognise(converted(fixture('index.json')));
    expect(found?.form.id).toBe('regshim-buildkit');
    expect(found?.reading.layers).toHaveLength(2);
    expect(found?.reading.restores?.indexSize).toBe(fixture('index.json').length);
  });

  it("regshim's image form: the cache's layers and cacheconfig found among its standard-typed layers", () => {
    const index = fixture('index.json');
    const built = buildStoredForm('regshim-image', index, { indexLayerMediaType: DEFAULT_INDEX_LAYER_MEDIA_TYPE });
    const found = recognise(built!.bytes);
    expect(found?.form.id).toBe('regshim-image');
    expect(found?.reading.layers.map((l) => l.digest)).toEqual(['sha256:75b50b3c772e1cc802c22f7032778603210487f806bbb1d19418e273873e1bbe', 'sha256:208748a8004ff08ad3f94e6ab65466a6a132912734b89cd8c9e5676226e76c1a']);
    expect(found?.reading.config.digest).toBe('sha256:d8e9a41d19ace8caf0af981f13cfcec9ae80d197163bfd0726b7ca75b764bffb');
    // The image config, two layers, the cacheconfig and the pushed bytes: five blobs, four layers.
    expect(found?.reading.blobs).toHaveLength(5);
    expect(found?.reading.manifestLayers).toBe(4);
    expect(found?.reading.restores?.indexSize).toBe(index.length);
  });

  it('an image, or what is not JSON, is no cache', () => {
    expect(recognise(fixture('dk-manifest.json'))).toBeUndefined();
    expect(recognise(Buffer.from('not json'))).toBeUndefined();
  });
});

describe('inspectFacts', () => {
  const index = fixture('index.json');

  it('the fixture through regshim: two forms, 975 bytes of cache, the newest layer, no problem (regshim\'s own form: auto moves where refused)', () => {
    const report = inspectFacts({ reference: 'a:b', stored: fetched(converted(index)), served: fetched(index) });
    expect(report).toMatchObject({ layers: 2, cacheBytes: 123 + 112 + 740, newestLayer: '2026-11-28T22:02:47.628276874Z' });
    expect(report.importedBy).toEqual({ throughRegshim: ['0.8-0.11', '0.12+'], fromRegistry: ['0.12+'] });
    expect(report.problems.map((p) => p.code)).toEqual([]);
    expect(isHealthy(report)).toBe(true);
  });

  it('the newest layer is compared as an instant, not as text of unequal precision', () => {
    const layers = ['2026-01-01T00:00:09.5Z', '2026-01-01T00:00:09.123456789Z', '2025-12-31T23:59:59Z'].map((t, i) =>
      goDescriptor({ mediaType: LAYER, digest: `sha256:${String(i).repeat(64)}`, size: 1, annotations: { 'buildkit/createdat': t } }),
    );
    const config = goDescriptor({ mediaType: 'application/vnd.buildkit.cacheconfig.v0', digest: `sha256:${'c'.repeat(64)}`, size: 1 });
    const bytes = Buffer.from(goMarshal({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [...layers, config] }));
    expect(inspectFacts({ reference: 'a:b', stored: fetched(bytes), served: fetched(bytes) }).newestLayer).toBe('2026-01-01T00:00:09.5Z');
  });

  it('over 1 MiB: the import limit, an error', () => {
    const big = bigIndex(6000);
    expect(big.length).toBeGreaterThan(1 << 20);
    const report = inspectFacts({ reference: 'a:b', stored: fetched(converted(big)), served: fetched(big) });
    expect(report.problems.filter((p) => p.severity === 'error').map((p) => p.code)).toEqual(['OVER_IMPORT_LIMIT', 'OVER_LAYER_LIMIT']);
    expect(isHealthy(report)).toBe(false);
  });

  it('over 500 layers but under 1 MiB: only the layer limit', () => {
    const many = bigIndex(600);
    const report = inspectFacts({ reference: 'a:b', stored: fetched(converted(many)), served: fetched(many) });
    expect(report.problems.filter((p) => p.severity === 'error').map((p) => p.code)).toEqual(['OVER_LAYER_LIMIT']);
  });

  it('a cacheconfig over 1 MiB, and a stored manifest over 4 MiB', () => {
    const bigConfig = bigIndex(1, 2 << 20);
    expect(inspectFacts({ reference: 'a:b', stored: fetched(bigConfig), served: fetched(bigConfig) }).problems.map((p) => p.code)).toContain('OVER_IMPORT_LIMIT');
    const huge = bigIndex(25_000);
    expect(huge.length).toBeGreaterThan(4 << 20);
    expect(inspectFacts({ reference: 'a:b', stored: fetched(huge), served: fetched(huge) }).problems.map((p) => p.code)).toContain('OVER_MANIFEST_SIZE');
  });

  it('an index that cannot be had: no served form, an error', () => {
    const report = inspectFacts({ reference: 'a:b', stored: fetched(converted(index)), served: 'the index blob is gone' });
    expect(report.served).toBeUndefined();
    expect(report.problems[0]).toEqual({ code: 'INDEX_UNAVAILABLE', severity: 'error', message: 'the index blob is gone' });
    expect(report.importedBy.throughRegshim).toEqual([]);
  });

  it('missing blobs, and blobs that could not be checked, are errors', () => {
    const input: InspectInput = { reference: 'a:b', stored: fetched(index), served: fetched(index), blobs: { checked: 3, missing: ['sha256:x'], unchecked: [{ digest: 'sha256:y', status: 403 }], records: { records: 4, losingLayers: 1 } } };
    const report = inspectFacts(input);
    expect(report.problems.filter((p) => p.severity === 'error').map((p) => p.code)).toEqual(['BLOBS_MISSING', 'BLOBS_UNCHECKED']);
    expect(report.problems.find((p) => p.code === 'BLOBS_MISSING')?.message).toMatch(/1 of 4 cache records lose their layers/);
  });
});

describe('recordsLosingLayers', () => {
  const config = fixture('cacheconfig.json');

  it('the fixture: each layer is one record’s result', () => {
    expect(recordsLosingLayers(config, new Set())).toEqual({ records: 4, losingLayers: 0 });
    expect(recordsLosingLayers(config, new Set(['sha256:75b50b3c772e1cc802c22f7032778603210487f806bbb1d19418e273873e1bbe']))).toEqual({ records: 4, losingLayers: 1 });
  });

  it('a missing parent breaks every layer above it', () => {
    const chain = Buffer.from(JSON.stringify({
      layers: [{ blob: 'sha256:a', parent: -1 }, { blob: 'sha256:b', parent: 0 }, { blob: 'sha256:c', parent: 1 }, { blob: 'sha256:d' }],
      records: [{ layers: [{ layer: 2 }] }, { layers: [{ layer: 1 }] }, { layers: [{ layer: 3 }] }, {}],
    }));
    expect(recordsLosingLayers(chain, new Set(['sha256:a']))).toEqual({ records: 4, losingLayers: 2 });
    expect(recordsLosingLayers(chain, new Set(['sha256:c']))).toEqual({ records: 4, losingLayers: 1 });
  });

  it('a parent cycle in a hand-made cacheconfig ends; what is not a cacheconfig is undefined', () => {
    const cycle = Buffer.from(JSON.stringify({ layers: [{ blob: 'sha256:a', parent: 1 }, { blob: 'sha256:b', parent: 0 }], records: [{ layers: [{ layer: 0 }] }] }));
    expect(recordsLosingLayers(cycle, new Set(['sha256:z']))).toEqual({ records: 1, losingLayers: 0 });
    expect(recordsLosingLayers(Buffer.from('[]'), new Set())).toBeUndefined();
  });
});

describe('parseCacheReference', () => {
  it.each([
    ['127.0.0.1:5000/team/app:cache', false, { origin: 'http://127.0.0.1:5000', name: 'team/app', reference: 'cache' }],
    ['localhost:5000/app', false, { origin: 'http://localhost:5000', name: 'app', reference: 'latest' }],
    ['registry.example.com/team/app:cache', false, { origin: 'https://registry.example.com', name: 'team/app', reference: 'cache' }],
    ['registry.example.com/team/app:cache', true, { origin: 'http://registry.example.com', name: 'team/app', reference: 'cache' }],
    [`r.example:8443/a/b@sha256:${'a'.repeat(64)}`, false, { origin: 'https://r.example:8443', name: 'a/b', reference: `sha256:${'a'.repeat(64)}` }],
    ['http://127.0.0.1:5000/v2/team/app/manifests/cache', false, { origin: 'http://127.0.0.1:5000', name: 'team/app', reference: 'cache' }],
  ])('%s (plain http: %s)', (text, plain, want) => {
    const ref = parseCacheReference(text, plain);
    expect(ref && { origin: ref.origin.origin, name: ref.name, reference: ref.reference }).toEqual(want);
  });

  it.each(['app:cache', 'r.example/Team/App:x', 'r.example/a@notadigest', 'http://r.example/v2/a/blobs/x', 'http://u:p@r.example/v2/a/manifests/t', ''])('%j is refused', (text) => {
    expect(parseCacheReference(text, false)).toBeUndefined();
  });
});

describe('upstreamRefusalOf: what a registry said, safe to log', () => {
  it('the first error’s code and message; detail is left out', () => {
    const body = Buffer.from(JSON.stringify({ errors: [{ code: 'DENIED', message: 'no', detail: { authorization: 'Bearer secret-token' } }, { code: 'OTHER', message: 'x' }] }));
    expect(upstreamRefusalOf(body)).toEqual({ code: 'DENIED', message: 'no' });
  });

  it('one line, at most 300 characters', () => {
    const refusal = upstreamRefusalOf(Buffer.from(JSON.stringify({ errors: [{ code: 'MANIFEST_INVALID', message: `line one\nline two\u0000${'x'.repeat(500)}` }] })));
    expect(refusal?.message).toMatch(/^line one line two x+…$/);
    expect(refusal?.message).toHaveLength(300);
  });

  it.each(['not json', '{}', '{"errors":[]}', '{"errors":[{"message":"no code"}]}', 'null'])('%j: nothing', (text) => {
    expect(upstreamRefusalOf(Buffer.from(text))).toBeUndefined();
  });
});
