// Index-style BuildKit cache <-> OCI image manifest. Pure: bytes and JSON in, data out.
// The manifest has the shape BuildKit >= 0.12 writes with image-manifest=true (config = the
// cacheconfig, layers = the cache blobs), plus one layer of regshim's own that holds the
// exact bytes of the original index, so the index can be served back byte for byte.
import { hash } from 'node:crypto';
import { BUILDKIT_CACHE_CONFIG, DOCKER_LIST, DOCKER_TO_OCI_LAYER, INDEX_TYPES, OCI_IMAGE_CONFIG, OCI_MANIFEST } from '../registry/media-types.js';
import { isVerifiableDigest } from '../registry/routes.js';
import { type CacheIndex, type Descriptor, isObject } from './detect.js';
import { goEscaped } from './go-json.js';

const OCI_TO_DOCKER_LAYER: ReadonlyMap<string, string> = new Map([...DOCKER_TO_OCI_LAYER].map(([docker, oci]) => [oci, docker]));

export const INDEX_DIGEST_ANNOTATION = 'dev.regshim.cache.index.digest';
export const INDEX_MEDIA_TYPE_ANNOTATION = 'dev.regshim.cache.index.mediaType';
/** Marks regshim's image form (forms/image-form.ts) among image manifests. */
export const FORM_ANNOTATION = 'dev.regshim.cache.form';
export const IMAGE_FORM = 'image';

/** BuildKit refuses to import a cache manifest or cacheconfig larger than this (remotecache readBlob). */
export const BUILDKIT_IMPORT_LIMIT = 1 << 20;

export interface ImageManifest {
  schemaVersion: 2;
  mediaType: typeof OCI_MANIFEST;
  config: Descriptor;
  layers: Descriptor[];
  annotations: Record<string, string>;
}

export interface Converted {
  manifest: ImageManifest;
  bytes: Buffer;
  digest: string;
  /** The descriptor of the original index bytes, stored as a blob. */
  indexBlob: Descriptor;
  /** The JSON text of the cache's own layers and of its config, as in `bytes`. */
  texts: { layers: string; config: string; layersAsIndexed: boolean };
}

export function sha256(bytes: Uint8Array): string {
  return `sha256:${hash('sha256', bytes, 'hex')}`;
}

export type DigestAlgorithm = 'sha256' | 'sha512';

export function digestWith(algorithm: DigestAlgorithm, bytes: Uint8Array): string {
  return `${algorithm}:${hash(algorithm, bytes, 'hex')}`;
}

/** The algorithm a digest names; sha256 for any other. */
export function algorithmOf(digest: string): DigestAlgorithm {
  return digest.startsWith('sha512:') ? 'sha512' : 'sha256';
}

/** The digest of `bytes` computed with the algorithm that `expected` names. */
export function digestAs(expected: string, bytes: Uint8Array): string {
  return digestWith(algorithmOf(expected), bytes);
}

/** An OCI layer type for a Docker one; other types are kept (they are already OCI or opaque). */
export function ociLayerType(mediaType: string): string {
  return DOCKER_TO_OCI_LAYER.get(mediaType) ?? mediaType;
}

/** The descriptor itself when its type is already OCI's (most are): no copy. */
function asOciLayer(d: Descriptor): Descriptor {
  const mediaType = ociLayerType(d.mediaType);
  return mediaType === d.mediaType ? d : { ...d, mediaType };
}

/**
 * The image manifest that stands for a cache index upstream. Deterministic: the same index
 * bytes and layer media type always give the same manifest bytes, so any replica can work
 * out which manifest belongs to an index digest.
 */
export function toImageManifest(index: CacheIndex, indexBytes: Uint8Array, indexLayerMediaType: string, algorithm: DigestAlgorithm = 'sha256'): Converted {
  // The index blob is stored under the digest the client named (a PUT by sha512 is read back
  // by sha512 on any replica), and so the manifest depends on the algorithm too.
  const indexDigest = digestWith(algorithm, indexBytes);
  const indexBlob: Descriptor = { mediaType: indexLayerMediaType, digest: indexDigest, size: indexBytes.byteLength };
  const layers = index.layers.map(asOciLayer);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: index.config,
    layers: [...layers, indexBlob],
    annotations: {
      [INDEX_DIGEST_ANNOTATION]: indexDigest,
      [INDEX_MEDIA_TYPE_ANNOTATION]: index.mediaType,
    },
  };
  // JSON.stringify(manifest), composed from parts, so that a rebuild check reuses the
  // layers' text: serializing thousands of descriptors is most of a conversion's time.
  const texts = { layers: JSON.stringify(layers), config: JSON.stringify(manifest.config), layersAsIndexed: layers.every((l, i) => l === index.layers[i]) };
  const text = `{"schemaVersion":2,"mediaType":${JSON.stringify(OCI_MANIFEST)},"config":${texts.config},"layers":${withLast(texts.layers, JSON.stringify(indexBlob))},"annotations":${JSON.stringify(manifest.annotations)}}`;
  const bytes = Buffer.from(text);
  return { manifest, bytes, digest: sha256(bytes), indexBlob, texts };
}

/** The JSON text of an array with one more element's text at its end. */
function withLast(arrayText: string, elementText: string): string {
  return arrayText === '[]' ? `[${elementText}]` : `${arrayText.slice(0, -1)},${elementText}]`;
}

/** What a converted manifest says about the index it stands for. */
export interface IndexReference {
  indexDigest: string;
  indexMediaType: string;
  indexSize: number;
}

/**
 * Reads a manifest fetched from the upstream: the reference to the original index when it
 * is one regshim wrote, else undefined. The index layer is found by digest, not by media
 * type, so manifests written under another --index-media-type still restore.
 */
export function readConvertedManifest(bytes: Uint8Array): IndexReference | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    return undefined;
  }
  return referenceOf(doc);
}

function referenceOf(doc: unknown): IndexReference | undefined {
  if (!isObject(doc) || doc.mediaType !== OCI_MANIFEST && doc.mediaType !== undefined) return undefined;
  if (!isObject(doc.annotations) || !Array.isArray(doc.layers) || !isObject(doc.config)) return undefined;
  // regshim's two stored forms: BuildKit's (the cacheconfig as config), and the image form,
  // which also keeps a BuildKit image manifest as pushed.
  const imageForm = doc.annotations[FORM_ANNOTATION] === IMAGE_FORM && doc.config.mediaType === OCI_IMAGE_CONFIG;
  if (!imageForm && doc.config.mediaType !== BUILDKIT_CACHE_CONFIG) return undefined;
  const indexDigest = doc.annotations[INDEX_DIGEST_ANNOTATION];
  const indexMediaType = doc.annotations[INDEX_MEDIA_TYPE_ANNOTATION];
  // They become response headers: a manifest written by hand must not make them invalid.
  if (typeof indexDigest !== 'string' || !isVerifiableDigest(indexDigest)) return undefined;
  if (typeof indexMediaType !== 'string' || !(INDEX_TYPES.has(indexMediaType) || (imageForm && indexMediaType === OCI_MANIFEST))) return undefined;
  const layer: unknown = doc.layers.find((l: unknown) => isObject(l) && l.digest === indexDigest);
  if (!isObject(layer) || !Number.isSafeInteger(layer.size)) return undefined;
  return { indexDigest, indexMediaType, indexSize: layer.size as number };
}

/**
 * The original index rebuilt from the manifest alone, for when its blob is gone: BuildKit
 * writes an index as Go's json.Marshal does, with the cacheconfig last, and the manifest
 * keeps every descriptor with its fields in their order. Undefined unless the result has
 * exactly the digest the manifest names (an index written any other way cannot be rebuilt).
 */
export function rebuildIndex(manifestBytes: Uint8Array): Buffer | undefined {
  try {
    return tryRebuild(manifestBytes);
  } catch {
    return undefined; // a manifest of odd shape, from an upstream: nothing to rebuild
  }
}

function tryRebuild(manifestBytes: Uint8Array): Buffer | undefined {
  const doc: unknown = JSON.parse(Buffer.from(manifestBytes.buffer, manifestBytes.byteOffset, manifestBytes.byteLength).toString('utf8'));
  const ref = referenceOf(doc);
  return ref ? rebuildFromManifest(doc as ImageManifest, ref) : undefined;
}

/**
 * Can the index of a conversion be rebuilt from its manifest alone (rebuildIndex)? Asked at
 * PUT time, with the index bytes at hand: they are compared, not hashed.
 */
export function isRebuildable(converted: Converted, indexBytes: Uint8Array): boolean {
  const { manifest, indexBlob, texts } = converted;
  const ref = { indexDigest: indexBlob.digest, indexMediaType: manifest.annotations[INDEX_MEDIA_TYPE_ANNOTATION] ?? '', indexSize: indexBlob.size };
  const original = Buffer.from(indexBytes.buffer, indexBytes.byteOffset, indexBytes.byteLength);
  // What rebuildCandidates would marshal first, from the texts the conversion made.
  if (texts.layersAsIndexed) return asWritten(indexText(ref.indexMediaType, withLast(texts.layers, texts.config)), original.length).equals(original);
  for (const candidate of rebuildCandidates(manifest, ref)) if (candidate.equals(original)) return true;
  return false;
}

/** rebuildIndex for a manifest already parsed. */
export function rebuildFromManifest(doc: Pick<ImageManifest, 'config' | 'layers'>, ref: IndexReference): Buffer | undefined {
  for (const candidate of rebuildCandidates(doc, ref)) if (digestAs(ref.indexDigest, candidate) === ref.indexDigest) return candidate;
  return undefined;
}

/** The indexes of the right size that BuildKit may have written for this manifest. */
function* rebuildCandidates(doc: Pick<ImageManifest, 'config' | 'layers'>, ref: IndexReference): Generator<Buffer> {
  const layers = doc.layers.filter((l) => l.digest !== ref.indexDigest);
  const attempts = [layers];
  // A Docker list's layer types became OCI ones in the manifest; try them back as Docker's.
  if (ref.indexMediaType === DOCKER_LIST) attempts.unshift(layers.map((l) => ({ ...l, mediaType: OCI_TO_DOCKER_LAYER.get(l.mediaType) ?? l.mediaType })));
  for (const entries of attempts) {
    const bytes = asWritten(indexText(ref.indexMediaType, JSON.stringify([...entries, doc.config])), ref.indexSize);
    if (bytes.length === ref.indexSize) yield bytes;
  }
}

/** An index as Go's json.Marshal writes it (BuildKit's field order), around its entries' JSON text. */
export function indexText(mediaType: string, manifestsText: string): string {
  return goEscaped(`{"schemaVersion":2,"mediaType":${JSON.stringify(mediaType)},"manifests":${manifestsText}}`);
}

/** json.Marshal writes no newline, json.Encoder one: the size of the original says which. */
function asWritten(text: string, size: number): Buffer {
  return Buffer.from(Buffer.byteLength(text) + 1 === size ? `${text}\n` : text);
}

/**
 * The original index, from the bytes of the index blob. Refuses bytes that are not the
 * ones the manifest names: a client verifies what it gets, and BuildKit's cache importer
 * does not, so a wrong byte must fail here, loudly.
 */
export function restoreIndex(ref: IndexReference, blob: Uint8Array): Buffer {
  const actual = digestAs(ref.indexDigest, blob);
  if (actual !== ref.indexDigest || blob.byteLength !== ref.indexSize) {
    throw new Error(`index blob ${ref.indexDigest} has digest ${actual} and ${blob.byteLength} bytes, expected ${ref.indexSize}`);
  }
  return Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
}

/** The reasons BuildKit will silently refuse to import this cache; empty when it will. */
export function importLimitProblems(index: { config: Pick<Descriptor, 'size'> }, indexBytes: Uint8Array, converted?: Pick<Converted, 'bytes'>): string[] {
  const out: string[] = [];
  if (indexBytes.byteLength > BUILDKIT_IMPORT_LIMIT) {
    out.push(`the cache index is ${indexBytes.byteLength} bytes, over BuildKit's import limit of ${BUILDKIT_IMPORT_LIMIT}`);
  }
  if (converted !== undefined && converted.bytes.byteLength > BUILDKIT_IMPORT_LIMIT) {
    out.push(`the converted manifest is ${converted.bytes.byteLength} bytes, over BuildKit's import limit of ${BUILDKIT_IMPORT_LIMIT}`);
  }
  if (index.config.size > BUILDKIT_IMPORT_LIMIT) {
    out.push(`the cacheconfig is ${index.config.size} bytes, over BuildKit's import limit of ${BUILDKIT_IMPORT_LIMIT}`);
  }
  return out;
}

// Limits of strict registries, measured on ECR rather than documented.
export const ECR_MAX_LAYERS = 500;
export const REGISTRY_MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** The registry limits a converted manifest meets: named in the log when a PUT is refused. */
export function registryLimitProblems(manifestBytes: Uint8Array, layers: number): string[] {
  const out: string[] = [];
  if (layers > ECR_MAX_LAYERS) out.push(`${layers} layers: ECR refuses more than about ${ECR_MAX_LAYERS}`);
  if (manifestBytes.byteLength > REGISTRY_MAX_MANIFEST_BYTES) {
    out.push(`${manifestBytes.byteLength} bytes: ECR and others refuse manifests over ${REGISTRY_MAX_MANIFEST_BYTES}`);
  }
  return out;
}
