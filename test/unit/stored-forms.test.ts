// The stored forms (stored-forms.ts, image-form.ts) and the rule that switches --cache-form
// auto (form-choice.ts), on the real BuildKit cache in its three forms.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256 } from '../../src/cache/convert.js';
import { mediaTypeRefusal } from '../../src/cache/forms/form-choice.js';
import { type StoredForm, buildStoredForm, manifestsKeeping, storedFormOf } from '../../src/cache/forms/stored-forms.js';
import { DEFAULT_INDEX_LAYER_MEDIA_TYPE } from '../../src/registry/media-types.js';
import { fixturesDir } from '../support/oci-archive.js';
import { smallCacheForms, testSmallCache } from '../support/small-cache-forms.js';

const fixture = (name: string) => readFileSync(join(fixturesDir(), name));
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const options = { indexLayerMediaType: DEFAULT_INDEX_LAYER_MEDIA_TYPE };
const index = fixture('index.json');
const imgmanifest = fixture('imgmanifest.json');

describe('storedFormOf: which form a stored manifest is, and what a client gets back', () => {
  it('BuildKit’s image manifest: itself, or the index made from it for a client that names the OCI index', () => {
    expect(storedFormOf(imgmanifest)).toEqual({
      form: 'buildkit-image-manifest',
      madeIndex: { digest: sha256(index), mediaType: OCI_INDEX, size: index.length },
      pushed: { digest: sha256(imgmanifest), mediaType: OCI_MANIFEST, size: imgmanifest.length },
    });
  });

  it.each<[StoredForm, string, Buffer, boolean]>([
    ['regshim-buildkit', 'index.json', index, false],
    ['regshim-buildkit', 'dlist.json', fixture('dlist.json'), false],
    ['regshim-image', 'index.json', index, false],
    ['regshim-image', 'dlist.json', fixture('dlist.json'), false],
    ['regshim-image', 'imgmanifest.json', imgmanifest, true],
  ])('%s of %s: the bytes pushed', (form, _file, pushed, made) => {
    const built = buildStoredForm(form, pushed, options)!;
    const type = (JSON.parse(pushed.toString()) as { mediaType: string }).mediaType;
    expect(storedFormOf(built.bytes)).toEqual({ form, pushed: { digest: sha256(pushed), mediaType: type, size: pushed.length }, madeFromPushed: made });
  });

  it('anything else is not a cache', () => {
    expect(storedFormOf(fixture('dk-manifest.json'))).toEqual({ form: 'not-a-cache' });
    expect(storedFormOf(index)).toEqual({ form: 'not-a-cache' });
  });
});

describe('buildStoredForm', () => {
  it('the image form uploads its config and the pushed bytes, and is the same bytes every time', () => {
    const a = buildStoredForm('regshim-image', index, options)!;
    const b = buildStoredForm('regshim-image', Buffer.from(index), options)!;
    expect(a.bytes.equals(b.bytes)).toBe(true);
    expect(a.blobs.map((blob) => blob.digest)).toEqual([JSON.parse(a.bytes.toString()).config.digest, sha256(index)]);
    expect(a.blobs[1]!.bytes.equals(index)).toBe(true);
  });

  it("BuildKit's form of an OCI index is the manifest BuildKit writes", () => {
    expect(buildStoredForm('buildkit-image-manifest', index, options)?.bytes.equals(imgmanifest)).toBe(true);
  });

  it('the image form’s config describes every layer, one for one', () => {
    const built = buildStoredForm('regshim-image', imgmanifest, options)!;
    const manifest = JSON.parse(built.bytes.toString()) as { layers: unknown[]; artifactType?: string };
    const config = JSON.parse(built.blobs[0]!.bytes.toString()) as { architecture: string; os: string; rootfs: { type: string; diff_ids: string[] }; history: unknown[] };
    expect([config.architecture, config.os, config.rootfs.type]).toEqual(['unknown', 'unknown', 'layers']);
    expect([config.rootfs.diff_ids.length, config.history.length, manifest.layers.length]).toEqual([4, 4, 4]);
    expect(manifest.artifactType).toBeUndefined();
  });
});

describe('manifestsKeeping: every replica finds the stored manifest from the bytes alone', () => {
  const find = (bytes: Buffer, preferred: 'buildkit' | 'image') => manifestsKeeping(bytes, sha256(bytes), { preferred, ...options, madeIndexes: true });

  it('an index: its two stored forms, the preferred first, then BuildKit’s manifest and its image form (for a made index)', () => {
    const digests = (preferred: 'buildkit' | 'image') => find(index, preferred).map((k) => [k.manifestDigest, k.source]);
    const bk = buildStoredForm('regshim-buildkit', index, options)!.digest;
    const img = buildStoredForm('regshim-image', index, options)!.digest;
    const keptNative = buildStoredForm('regshim-image', imgmanifest, options)!.digest;
    expect(digests('buildkit')).toEqual([[bk, 'stored'], [img, 'stored'], [sha256(imgmanifest), 'made'], [keptNative, 'made-from-stored']]);
    expect(digests('image')).toEqual([[img, 'stored'], [bk, 'stored'], [keptNative, 'made-from-stored'], [sha256(imgmanifest), 'made']]);
  });

  it("BuildKit's image manifest, as pushed: its image form", () => {
    expect(find(imgmanifest, 'buildkit')).toEqual([{ manifestDigest: buildStoredForm('regshim-image', imgmanifest, options)!.digest, source: 'stored', mediaType: OCI_MANIFEST, rebuildable: false }]);
  });
});

describe('mediaTypeRefusal: when --cache-form auto sends a PUT again in the image form', () => {
  const body = (errors: unknown[]) => Buffer.from(JSON.stringify({ errors }));
  const sent = ['application/vnd.buildkit.cacheconfig.v0', DEFAULT_INDEX_LAYER_MEDIA_TYPE];

  it.each([
    ['Quay', 400, body([{ code: 'MANIFEST_INVALID', message: "manifest data does not match schema: 'application/vnd.buildkit.cacheconfig.v0' is not one of ['application/vnd.oci.image.config.v1+json']" }])],
    ['GitLab', 400, body([{ code: 'MANIFEST_INVALID', message: 'manifest invalid', detail: `unknown media type: ${DEFAULT_INDEX_LAYER_MEDIA_TYPE}` }])],
    ['a registry naming the type in a detail object', 400, body([{ code: 'MANIFEST_INVALID', message: 'manifest invalid', detail: { mediaType: 'application/vnd.buildkit.cacheconfig.v0' } }])],
    ['UNSUPPORTED', 400, body([{ code: 'UNSUPPORTED', message: 'media type not supported' }])],
    ['415', 415, Buffer.from('Unsupported Media Type')],
  ])('%s: yes', (_who, status, text) => {
    expect(mediaTypeRefusal(status, text, sent)).toBeDefined();
  });

  it.each([
    ['401', 401, body([{ code: 'UNAUTHORIZED', message: 'authentication required' }])],
    ['403 (a policy)', 403, body([{ code: 'DENIED', message: 'requested access to the resource is denied: application/vnd.buildkit.cacheconfig.v0' }])],
    ['413', 413, body([{ code: 'SIZE_INVALID', message: 'manifest too large' }])],
    ['a missing blob', 400, body([{ code: 'MANIFEST_BLOB_UNKNOWN', message: 'blob unknown to registry', detail: 'sha256:1' }])],
    ['another invalid manifest', 400, body([{ code: 'MANIFEST_INVALID', message: 'manifest invalid', detail: 'layers: too many' }])],
    ['a 400 that is not JSON', 400, Buffer.from('unknown media type')],
    ['a 500', 500, body([{ code: 'UNKNOWN', message: 'unknown media type' }])],
  ])('%s: no', (_what, status, text) => {
    expect(mediaTypeRefusal(status, text, sent)).toBeUndefined();
  });
});

describe("every stored form of doctor's small cache, as its probes push them", () => {
  it('each form is what storedFormOf recognises, and names only blobs it uploads', () => {
    const forms = smallCacheForms(DEFAULT_INDEX_LAYER_MEDIA_TYPE);
    const { index: pushed } = testSmallCache();
    for (const [form, built] of Object.entries(forms)) {
      expect(storedFormOf(built.bytes).form).toBe(form);
      const doc = JSON.parse(built.bytes.toString()) as { config: { digest: string }; layers: { digest: string }[] };
      const uploaded = new Set(built.blobs.map((b) => b.digest));
      for (const d of [doc.config, ...doc.layers]) expect(uploaded.has(d.digest), `${form} ${d.digest}`).toBe(true);
      for (const b of built.blobs) expect(sha256(b.bytes)).toBe(b.digest);
    }
    expect(storedFormOf(forms['regshim-image'].bytes)).toMatchObject({ pushed: { digest: sha256(pushed) } });
  });
});
