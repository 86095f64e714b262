// The cache forms regshim knows, in one table: how to recognise each in a manifest body,
// which BuildKit versions import it, which registries store it, and (for doctor's probes)
// how to build it from a small cache. A new form is one defineForm() call. Pure.
import { readConvertedManifest, toImageManifest } from '../cache/convert.js';
import { type Descriptor, classifyManifest, isObject } from '../cache/detect.js';
import { BUILDKIT_CACHE_CONFIG, DOCKER_LIST, OCI_INDEX, OCI_MANIFEST } from '../registry/media-types.js';
import type { IndexReference } from '../cache/convert.js';

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
  /** A stored form that stands for an index: what a client of regshim gets back instead. */
  restores?: IndexReference;
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
  /** A form regshim stores upstream (doctor says which one it would choose). */
  storedByRegshim: boolean;
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

function parse(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** An image manifest whose config is the cacheconfig: the layers and config it names. */
function readCacheManifest(body: Buffer): FormReading | undefined {
  const doc = parse(body);
  if (!isObject(doc) || (doc.mediaType !== undefined && doc.mediaType !== OCI_MANIFEST)) return undefined;
  if (!isObject(doc.config) || doc.config.mediaType !== BUILDKIT_CACHE_CONFIG || !Array.isArray(doc.layers)) return undefined;
  const config = doc.config as Descriptor;
  const layers = doc.layers as Descriptor[];
  return { mediaType: OCI_MANIFEST, config, layers, blobs: [config, ...layers].map((d) => d.digest), manifestLayers: layers.length };
}

function indexOf(cache: SmallCache) {
  const detection = classifyManifest(cache.index, undefined);
  if (detection.kind !== 'cache') throw new Error('the small cache is not a cache index');
  return detection.index;
}

defineForm({
  id: 'regshim-manifest',
  label: "regshim's image manifest (the index kept as its last layer)",
  read(body) {
    const restores = readConvertedManifest(body);
    const reading = restores && readCacheManifest(body);
    return reading && restores ? { ...reading, layers: reading.layers.filter((l) => l.digest !== restores.indexDigest), restores } : undefined;
  },
  importedBy: NEW_BUILDKIT,
  strictRegistriesStore: true,
  allowListRegistriesStore: false,
  storedByRegshim: true,
  probe(cache, { indexMediaType }) {
    const converted = toImageManifest(indexOf(cache), cache.index, indexMediaType);
    return { manifest: converted.bytes, mediaType: OCI_MANIFEST, extraBlobs: [cache.index] };
  },
});

defineForm({
  id: 'index',
  label: 'BuildKit index (OCI)',
  read: readIndex(OCI_INDEX),
  importedBy: ALL_BUILDKIT,
  strictRegistriesStore: false,
  allowListRegistriesStore: false,
  storedByRegshim: false,
  probe: (cache) => ({ manifest: cache.index, mediaType: OCI_INDEX, extraBlobs: [] }),
});

defineForm({
  id: 'docker-list',
  label: 'BuildKit index (Docker list)',
  read: readIndex(DOCKER_LIST),
  importedBy: ALL_BUILDKIT,
  strictRegistriesStore: false,
  allowListRegistriesStore: false,
  storedByRegshim: false,
});

defineForm({
  id: 'image-manifest',
  label: 'BuildKit image manifest (image-manifest=true)',
  read: readCacheManifest,
  importedBy: NEW_BUILDKIT,
  strictRegistriesStore: true,
  allowListRegistriesStore: false,
  storedByRegshim: false,
  probe(cache) {
    const index = indexOf(cache);
    const manifest = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: index.config, layers: index.layers };
    return { manifest: Buffer.from(JSON.stringify(manifest)), mediaType: OCI_MANIFEST, extraBlobs: [] };
  },
});
