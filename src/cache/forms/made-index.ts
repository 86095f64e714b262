// BuildKit's own image-manifest cache as an index, for importers that read only the index
// form: BuildKit before 0.12 ignores an image-manifest cache without an error. Both ways are
// pure, and exact inverses for what BuildKit writes (remotecache/export.go: the same
// descriptors, json.Marshal'd into an ocispec.Manifest or, layers then config, an
// ocispec.Index), so any replica makes the same index and finds the manifest again from it.
import { BUILDKIT_CACHE_CONFIG, OCI_INDEX, OCI_MANIFEST } from '../../registry/media-types.js';
import { indexText, sha256 } from '../convert.js';
import { type CacheIndex, classifyManifest, isObject } from '../detect.js';
import { goEscaped } from '../go-json.js';

/** An index made from an image-manifest cache: its bytes and digest. */
export interface MadeIndex {
  readonly bytes: Buffer;
  readonly digest: string;
}

// ocispec.Manifest as BuildKit fills it: no artifactType, subject or annotations.
const BUILDKIT_MANIFEST_FIELDS = ['schemaVersion', 'mediaType', 'config', 'layers'];

/**
 * The index BuildKit would have written for this image-manifest cache, when the manifest is
 * exactly as BuildKit writes one; undefined for any other manifest (regshim's own forms,
 * images, a cache written by hand), which is served as it is.
 */
export function indexOfBuildkitManifest(manifestBytes: Uint8Array): MadeIndex | undefined {
  const text = Buffer.from(manifestBytes.buffer, manifestBytes.byteOffset, manifestBytes.byteLength);
  if (!text.includes(BUILDKIT_CACHE_CONFIG)) return undefined; // most manifests stop here, unparsed
  let doc: unknown;
  try {
    doc = JSON.parse(text.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isObject(doc) || Object.keys(doc).join() !== BUILDKIT_MANIFEST_FIELDS.join()) return undefined;
  if (doc.schemaVersion !== 2 || doc.mediaType !== OCI_MANIFEST || !Array.isArray(doc.layers) || doc.layers.length === 0) return undefined;
  if (!isObject(doc.config) || doc.config.mediaType !== BUILDKIT_CACHE_CONFIG) return undefined;
  // Only bytes json.Marshal wrote (json.Encoder adds a newline) can be written again from
  // the index: the inverse below. The newline, if any, carries over.
  const newline = text.at(-1) === 0x0a ? '\n' : '';
  if (!Buffer.from(goEscaped(JSON.stringify(doc)) + newline).equals(text)) return undefined;
  const bytes = Buffer.from(indexText(OCI_INDEX, JSON.stringify([...doc.layers, doc.config])) + newline);
  // The index must be a cache index regshim reads: valid descriptors, one cacheconfig.
  if (classifyManifest(bytes, undefined).kind !== 'cache') return undefined;
  return { bytes, digest: sha256(bytes) };
}

/**
 * The image-manifest cache BuildKit would have written for these entries: the inverse of
 * indexOfBuildkitManifest, for finding the manifest of a made index from the index alone.
 */
export function buildkitManifestOfIndex(index: CacheIndex, indexBytes: Uint8Array): { bytes: Buffer; digest: string } | undefined {
  if (index.mediaType !== OCI_INDEX || index.manifests.at(-1) !== index.config) return undefined;
  const text = `{"schemaVersion":2,"mediaType":${JSON.stringify(OCI_MANIFEST)},"config":${JSON.stringify(index.config)},"layers":${JSON.stringify(index.layers)}}`;
  const bytes = Buffer.from(goEscaped(text) + (indexBytes.at(-1) === 0x0a ? '\n' : ''));
  return { bytes, digest: sha256(bytes) };
}
