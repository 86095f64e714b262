// The cache forms inspect and doctor know, in one table: how to recognise each in a manifest
// body, which BuildKit versions import it, which registries store it, and (for doctor's
// probes) how to build it from a small cache. A new form is one defineForm() call. Which
// stored form a manifest is, and what a client gets back for it, is the server's own answer
// (cache/forms/stored-forms.ts); this table adds what a person needs to know about each. Pure.
import { type IndexReference, readConvertedManifest } from '../cache/convert.js';
import { type Descriptor, classifyManifest, isObject } from '../cache/detect.js';
import { type StoredForm, buildStoredForm, storedFormOf } from '../cache/forms/stored-forms.js';
import { BUILDKIT_CACHE_CONFIG, DOCKER_LIST, OCI_IMAGE_CONFIG, OCI_INDEX, OCI_MANIFEST } from '../registry/media-types.js';

/** BuildKit releases as far as cache import goes: before 0.12 only index forms are read. */
export type BuildKitRange = '0.8-0.11' | '0.12+';
export const ALL_BUILDKIT: readonly BuildKitRange[] = ['0.8-0.11', '0.12+'];
const NEW_BUILDKIT: readonly BuildKitRange[] = ['0.12+'];

/** What a manifest body says about the cache in it. */
export interface FormReading {
  mediaType: string;
  /** The cacheconfig's descriptor. */
  config: Descriptor;
  /** The cache's layers. */
  layers: Descriptor[];
  /** Every blob the stored body references (what --check-blobs HEADs). */
  blobs: string[];
  /** Layers of the stored body as a registry counts them (ECR's limit). */
  manifestLayers: number;
  /** A stored form that keeps what a client pushed: regshim gives those bytes back instead. */
  restores?: IndexReference;
  /** BuildKit's image manifest: regshim gives a client that names the OCI index one made from it. */
  makesIndex?: boolean;
}

/** A small cache in the index form, which doctor's probes turn into each form. */
export interface SmallCache {
  index: Buffer;
  layer: Buffer;
  cacheconfig: Buffer;
}

/** A probe of a form: the manifest to push, and blobs beyond the small cache's own. */
export interface Probe {
  manifest: Buffer;
  mediaType: string;
  extraBlobs: Buffer[];
}

export interface CacheForm {
  /** Stable: in `--json` output. */
  id: string;
  /** For people. */
  label: string;
  read(body: Buffer): FormReading | undefined;
  /** BuildKit versions that import this form when they are given it. */
  importedBy: readonly BuildKitRange[];
  /** Stored by registries that refuse an index of blobs (ECR, GCR, Harbor, distribution 3). */
  strictRegistriesStore: boolean;
  /** Stored by registries that allow-list media types (Quay, GitLab's metadata database). */
  allowListRegistriesStore: boolean;
  /** Which of regshim's written forms (--cache-form buildkit or image) this is, if one. */
  writtenAs?: 'buildkit' | 'image';
  /** Builds this form of a small cache, for doctor to push; forms doctor does not probe have none. */
  probe?(cache: SmallCache, options: { indexMediaType: string }): Probe;
}

const forms: CacheForm[] = [];

/** Adds a form; earlier forms are tried first when recognising a body. */
export function defineForm(form: CacheForm): void {
  if (forms.some((f) => f.id === form.id)) throw new Error(`cache form ${form.id} is defined twice`);
  forms.push(form);
}

export function knownForms(): readonly CacheForm[] {
  return forms;
}

/** Which form a manifest body is, and what it says; undefined for a body that is no cache. */
export function recognise(body: Buffer): { form: CacheForm; reading: FormReading } | undefined {
  for (const form of forms) {
    const reading = form.read(body);
    if (reading) return { form, reading };
  }
  return undefined;
}

export function formById(id: string): CacheForm | undefined {
  return forms.find((f) => f.id === id);
}

function readIndex(mediaType: string) {
  return (body: Buffer): FormReading | undefined => {
    const detection = classifyManifest(body, undefined);
    if (detection.kind !== 'cache' || detection.index.mediaType !== mediaType) return undefined;
    const { config, layers, manifests } = detection.index;
    return { mediaType, config, layers, blobs: manifests.map((d) => d.digest), manifestLayers: manifests.length };
  };
}

/** An image manifest with a config of this type: its config and layers as written. */
function readManifest(body: Buffer, configType: string): { config: Descriptor; layers: Descriptor[] } | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isObject(doc) || (doc.mediaType !== undefined && doc.mediaType !== OCI_MANIFEST)) return undefined;
  if (!isObject(doc.config) || doc.config.mediaType !== configType || !Array.isArray(doc.layers)) return undefined;
  return { config: doc.config as Descriptor, layers: doc.layers as Descriptor[] };
}

/**
 * One of regshim's stored forms (as cache/forms/stored-forms.ts tells them apart), with the config type
 * it writes; `cacheOf` finds the cache's cacheconfig and layers among its descriptors.
 */
function readRegshimForm(
  body: Buffer,
  form: StoredForm,
  configType: string,
  cacheOf: (doc: { config: Descriptor; layers: Descriptor[] }, restores: IndexReference) => { config: Descriptor; layers: Descriptor[] } | undefined,
): FormReading | undefined {
  const restores = readConvertedManifest(body);
  const doc = restores && storedFormOf(body).form === form ? readManifest(body, configType) : undefined;
  const cache = doc && restores ? cacheOf(doc, restores) : undefined;
  if (!doc || !restores || !cache) return undefined;
  return { mediaType: OCI_MANIFEST, ...cache, blobs: [doc.config, ...doc.layers].map((d) => d.digest), manifestLayers: doc.layers.length, restores };
}

function probeOf(form: StoredForm) {
  return (cache: SmallCache, { indexMediaType }: { indexMediaType: string }): Probe => {
    const built = buildStoredForm(form, cache.index, { indexLayerMediaType: indexMediaType });
    if (!built) throw new Error(`the small cache cannot be built in the ${form} form`);
    return { manifest: built.bytes, mediaType: OCI_MANIFEST, extraBlobs: built.blobs.map((b) => b.bytes) };
  };
}

defineForm({
  id: 'regshim-buildkit',
  label: "regshim's BuildKit form (BuildKit's image manifest, the pushed bytes kept as its last layer)",
  read: (body) => readRegshimForm(body, 'regshim-buildkit', BUILDKIT_CACHE_CONFIG, (doc, restores) => ({ config: doc.config, layers: doc.layers.filter((l) => l.digest !== restores.indexDigest) })),
  importedBy: NEW_BUILDKIT,
  strictRegistriesStore: true,
  allowListRegistriesStore: false,
  writtenAs: 'buildkit',
  probe: probeOf('regshim-buildkit'),
});

defineForm({
  id: 'regshim-image',
  label: "regshim's image form (an OCI image: the cache's layers, its cacheconfig and the pushed bytes)",
  // Layers: the cache's, then the cacheconfig, then the pushed bytes (cache/forms/image-form.ts).
  read: (body) => readRegshimForm(body, 'regshim-image', OCI_IMAGE_CONFIG, (doc) => (doc.layers.length < 2 ? undefined : { config: doc.layers.at(-2) as Descriptor, layers: doc.layers.slice(0, -2) })),
  importedBy: [],
  strictRegistriesStore: true,
  allowListRegistriesStore: true,
  writtenAs: 'image',
  probe: probeOf('regshim-image'),
});

defineForm({
  id: 'index',
  label: 'BuildKit index (OCI)',
  read: readIndex(OCI_INDEX),
  importedBy: ALL_BUILDKIT,
  strictRegistriesStore: false,
  allowListRegistriesStore: false,
  probe: (cache) => ({ manifest: cache.index, mediaType: OCI_INDEX, extraBlobs: [] }),
});

defineForm({
  id: 'docker-list',
  label: 'BuildKit index (Docker list)',
  read: readIndex(DOCKER_LIST),
  importedBy: ALL_BUILDKIT,
  strictRegistriesStore: false,
  allowListRegistriesStore: false,
});

defineForm({
  id: 'buildkit-image-manifest',
  label: 'BuildKit image manifest (image-manifest=true)',
  read(body) {
    const doc = readManifest(body, BUILDKIT_CACHE_CONFIG);
    if (!doc) return undefined;
    const blobs = [doc.config, ...doc.layers].map((d) => d.digest);
    return { mediaType: OCI_MANIFEST, config: doc.config, layers: doc.layers, blobs, manifestLayers: doc.layers.length, makesIndex: storedFormOf(body).form === 'buildkit-image-manifest' };
  },
  importedBy: NEW_BUILDKIT,
  strictRegistriesStore: true,
  allowListRegistriesStore: false,
  probe: probeOf('buildkit-image-manifest'),
});
