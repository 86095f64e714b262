// The strict-gate SIMULATION's profiles (strict-profiles.ts) do what their documents say,
// in front of the real registry: the control for every test that stores a cache through them.
// Quay: Red Hat Quay 3 "Configuring artifact types" (ALLOWED_OCI_ARTIFACT_TYPES,
// IGNORE_UNKNOWN_MEDIATYPES false) and Pulp's "Configure Supported OCI Types" defaults.
// GitLab: the container registry's "Supported Media Types" (docs-gitlab/supported-media-types.md).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoredForm } from '../../src/cache/forms/stored-forms.js';
import { DEFAULT_INDEX_LAYER_MEDIA_TYPE } from '../../src/registry/media-types.js';
import { pushBlob, pushBlobs, putManifest } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { type FixtureCache, fixtureCache, fixturesDir } from '../support/oci-archive.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { smallCacheForms } from '../support/small-cache-forms.js';
import { type GateProfile, type StrictGate, startStrictGate } from '../support/strict-gate.js';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const CACHE_CONFIG = 'application/vnd.buildkit.cacheconfig.v0';

const cleanup = new Cleanup();
let registry: Registry;
let index: FixtureCache;
let imgmanifest: FixtureCache;
const gates = {} as Record<GateProfile, StrictGate>;
const dkManifest = readFileSync(join(fixturesDir(), 'dk-manifest.json'));
const dkConfig = readFileSync(join(fixturesDir(), 'dk-config.json'));
const regshimLayerForm = (bytes: Buffer) => {
  const doc = JSON.parse(bytes.toString()) as { layers: unknown[]; annotations?: Record<string, string> };
  doc.layers.push({ mediaType: 'application/vnd.regshim.buildkit.cache.index.v1+json', digest: index.digest, size: index.bytes.length });
  return Buffer.from(JSON.stringify(doc));
};

beforeAll(async () => {
  registry = await cleanup.track(startRegistry());
  index = await fixtureCache('index');
  imgmanifest = await fixtureCache('imgmanifest');
  for (const profile of ['gcr', 'quay', 'gitlab'] as const) gates[profile] = await cleanup.track(startStrictGate(registry.url, profile));
  await pushBlobs(registry.url, 'p/app', [...index.blobs.values(), dkConfig, index.bytes]);
});

afterAll(() => cleanup.run());

function errorOf(bytes: Buffer): { code: string; message: string; detail?: string } {
  return (JSON.parse(bytes.toString()) as { errors: { code: string; message: string; detail?: string }[] }).errors[0]!;
}

describe('quay profile', () => {
  it("refuses BuildKit's index form ('platform' is a required property)", async () => {
    const res = await putManifest(gates.quay.url, 'p/app', 'index', index.bytes, OCI_INDEX);
    expect([res.status, errorOf(res.bytes).code, errorOf(res.bytes).message]).toEqual([400, 'MANIFEST_INVALID', "manifest data does not match schema: 'platform' is a required property"]);
  });

  it("refuses BuildKit's image-manifest form and regshim's layer form, naming the cacheconfig", async () => {
    for (const bytes of [imgmanifest.bytes, regshimLayerForm(imgmanifest.bytes)]) {
      const res = await putManifest(gates.quay.url, 'p/app', 'img', bytes, OCI_MANIFEST);
      expect([res.status, errorOf(res.bytes).code]).toEqual([400, 'MANIFEST_INVALID']);
      expect(errorOf(res.bytes).message).toMatch(new RegExp(`^manifest data does not match schema: '${CACHE_CONFIG}' is not one of \\[`));
    }
  });

  it('accepts an image whose config matches its layers, and refuses one whose config does not', async () => {
    expect((await putManifest(gates.quay.url, 'p/app', 'image', dkManifest, DOCKER_MANIFEST)).status).toBe(201);
    const config = JSON.parse(dkConfig.toString()) as { rootfs: { diff_ids: string[] } };
    config.rootfs.diff_ids.pop();
    const bad = Buffer.from(JSON.stringify(config));
    const digest = await pushBlob(registry.url, 'p/app', bad);
    const manifest = Buffer.from(dkManifest.toString().replace(/"size": 1393,\s*"digest": "sha256:a0cd[0-9a-f]+"/, `"size": ${bad.length}, "digest": "${digest}"`));
    const res = await putManifest(gates.quay.url, 'p/app', 'image-bad', manifest, DOCKER_MANIFEST);
    expect([res.status, errorOf(res.bytes).message]).toEqual([400, "the image config's rootfs.diff_ids name 1 layers, the manifest 2"]);
  });

  it('refuses a layer type its config type does not allow', async () => {
    const doc = JSON.parse(dkManifest.toString()) as { layers: { mediaType: string }[] };
    doc.layers[0]!.mediaType = 'application/vnd.oci.image.layer.v1.tar+gzip';
    const res = await putManifest(gates.quay.url, 'p/app', 'mixed', Buffer.from(JSON.stringify(doc)), DOCKER_MANIFEST);
    expect(errorOf(res.bytes).message).toMatch(/^manifest data does not match schema: 'application\/vnd.oci.image.layer.v1.tar\+gzip' is not one of \['application\/vnd.docker/);
  });
});

describe('gitlab profile', () => {
  it("accepts BuildKit's index and image-manifest forms: the cacheconfig is in its table", async () => {
    expect((await putManifest(gates.gitlab.url, 'p/app', 'gl-index', index.bytes, OCI_INDEX)).status).toBe(201);
    expect((await putManifest(gates.gitlab.url, 'p/app', 'gl-img', imgmanifest.bytes, OCI_MANIFEST)).status).toBe(201);
  });

  it("refuses regshim's own layer type and an unknown artifactType: 400 MANIFEST_INVALID, unknown media type", async () => {
    const res = await putManifest(gates.gitlab.url, 'p/app', 'gl-regshim', regshimLayerForm(imgmanifest.bytes), OCI_MANIFEST);
    expect([res.status, errorOf(res.bytes).code, errorOf(res.bytes).detail]).toEqual([400, 'MANIFEST_INVALID', 'unknown media type: application/vnd.regshim.buildkit.cache.index.v1+json']);
    const typed = Buffer.from(imgmanifest.bytes.toString().replace('"config"', '"artifactType":"application/vnd.example.thing.v1","config"'));
    const res2 = await putManifest(gates.gitlab.url, 'p/app', 'gl-artifact', typed, OCI_MANIFEST);
    expect(errorOf(res2.bytes).detail).toBe('unknown media type: application/vnd.example.thing.v1');
  });
});

describe('gcr profile (the default)', () => {
  it("refuses BuildKit's index form and accepts its image-manifest form", async () => {
    const res = await putManifest(gates.gcr.url, 'p/app', 'gcr-index', index.bytes, OCI_INDEX);
    expect(errorOf(res.bytes).message).toBe('Failed to parse manifest: Image index child manifest not supported: application/vnd.oci.image.layer.v1.tar+gzip.');
    expect((await putManifest(gates.gcr.url, 'p/app', 'gcr-img', imgmanifest.bytes, OCI_MANIFEST)).status).toBe(201);
  });
});

describe('which stored forms each profile accepts (the table in docs/storage.md), with doctor\'s small cache', () => {
  const expected: Record<GateProfile, Record<StoredForm, number>> = {
    gcr: { 'buildkit-image-manifest': 201, 'regshim-buildkit': 201, 'regshim-image': 201 },
    quay: { 'buildkit-image-manifest': 400, 'regshim-buildkit': 400, 'regshim-image': 201 },
    gitlab: { 'buildkit-image-manifest': 201, 'regshim-buildkit': 400, 'regshim-image': 201 },
  };
  it.each(['gcr', 'quay', 'gitlab'] as const)('%s', async (profile) => {
    const forms = smallCacheForms(DEFAULT_INDEX_LAYER_MEDIA_TYPE);
    const got: Record<string, number> = {};
    for (const [form, built] of Object.entries(forms)) {
      const repo = `probe/${profile}-${form}`;
      for (const blob of built.blobs) await pushBlob(registry.url, repo, blob.bytes);
      got[form] = (await putManifest(gates[profile].url, repo, 'probe', built.bytes, OCI_MANIFEST)).status;
    }
    expect(got).toEqual(expected[profile]);
  });
});
