// The forms a BuildKit cache takes in the registry, in one place: which one a stored
// manifest is, what a client gets back for it, and how each is built from what a client
// pushed. Pure. What regshim writes is chosen per upstream (form-choice.ts).
//
//   form                       config                   written by   a client gets back
//   buildkit-image-manifest    the cacheconfig          BuildKit     the manifest; an index made from it (made-index.ts) if it names the OCI index
//   regshim-buildkit           the cacheconfig          regshim      the pushed bytes (index, list), from the extra layer (convert.ts)
//   regshim-image              an OCI image config      regshim      the pushed bytes (index, list, or BuildKit's manifest, then as above) (image-form.ts)
import { OCI_IMAGE_CONFIG, OCI_INDEX, OCI_MANIFEST } from '../../registry/media-types.js';
import { type DigestAlgorithm, type IndexReference, algorithmOf, isRebuildable, readConvertedManifest, sha256, toImageManifest } from '../convert.js';
import { type CacheIndex, type Descriptor, classifyManifest } from '../detect.js';
import { type CacheParts, toImageForm } from './image-form.js';
import type { IndexSource } from '../digest-map.js';
import type { WrittenForm } from './form-choice.js';
import { type MadeIndex, buildkitManifestOfIndex, indexOfBuildkitManifest } from './made-index.js';

export type StoredForm = 'buildkit-image-manifest' | 'regshim-buildkit' | 'regshim-image';

/** What a client gets back for a stored manifest: what it pushed, or the index made from it. */
export interface Answer {
  digest: string;
  mediaType: string;
  size: number;
}

export type StoredFormOf =
  | { form: 'not-a-cache' }
  | {
      form: 'buildkit-image-manifest';
      /** What a client that names the OCI index in Accept gets. */
      madeIndex: Answer;
      /** What any other client gets: the manifest itself. */
      pushed: Answer;
    }
  | {
      form: 'regshim-buildkit' | 'regshim-image';
      /** What a client gets: the bytes it pushed, kept as a blob (digest, type, size). */
      pushed: Answer;
      /**
       * When the pushed bytes are BuildKit's image manifest (image form only), a client that
       * names the OCI index gets the index made from them: known once the blob is read.
       */
      madeFromPushed: boolean;
    };

/** Which stored form a manifest from the registry is, and what regshim answers for it. */
export function storedFormOf(manifestBytes: Uint8Array): StoredFormOf {
  const ref = readConvertedManifest(manifestBytes);
  if (ref) {
    const form = isImageForm(manifestBytes) ? 'regshim-image' : 'regshim-buildkit';
    return { form, pushed: answerOf(ref), madeFromPushed: ref.indexMediaType === OCI_MANIFEST };
  }
  const made = indexOfBuildkitManifest(manifestBytes);
  if (!made) return { form: 'not-a-cache' };
  return {
    form: 'buildkit-image-manifest',
    madeIndex: { digest: made.digest, mediaType: OCI_INDEX, size: made.bytes.length },
    pushed: { digest: sha256(manifestBytes), mediaType: OCI_MANIFEST, size: manifestBytes.byteLength },
  };
}

function answerOf(ref: IndexReference): Answer {
  return { digest: ref.indexDigest, mediaType: ref.indexMediaType, size: ref.indexSize };
}

/** Of regshim's two forms, the image form is the one whose config is an image config. */
function isImageForm(manifestBytes: Uint8Array): boolean {
  const doc = JSON.parse(Buffer.from(manifestBytes.buffer, manifestBytes.byteOffset, manifestBytes.byteLength).toString('utf8')) as { config: { mediaType: unknown } };
  return doc.config.mediaType === OCI_IMAGE_CONFIG;
}

/** A manifest body a client PUT, as a cache: an index or list, or BuildKit's image manifest. */
export type Pushed =
  | { kind: 'index'; index: CacheIndex; parts: CacheParts }
  | { kind: 'buildkit-manifest'; made: MadeIndex; parts: CacheParts }
  | { kind: 'not-cache' }
  | { kind: 'invalid'; detail: string };

export function classifyPushed(body: Uint8Array, contentType: string | undefined): Pushed {
  const detection = classifyManifest(body, contentType);
  if (detection.kind === 'invalid') return detection;
  if (detection.kind === 'cache') {
    const { index } = detection;
    return { kind: 'index', index, parts: { mediaType: index.mediaType, layers: index.layers, config: index.config } };
  }
  const made = indexOfBuildkitManifest(body);
  if (!made) return { kind: 'not-cache' };
  return { kind: 'buildkit-manifest', made, parts: partsOfMadeIndex(made) };
}

/** The entries of a made index, as the manifest it was made from has them. */
function partsOfMadeIndex(made: MadeIndex): CacheParts {
  const detection = classifyManifest(made.bytes, undefined);
  if (detection.kind !== 'cache') throw new Error('a made index is always a cache index');
  return { mediaType: OCI_MANIFEST, layers: detection.index.layers, config: detection.index.config };
}

/** A stored form built from pushed bytes: the manifest and the blobs to upload before it. */
export interface BuiltForm {
  form: StoredForm;
  bytes: Buffer;
  digest: string;
  blobs: { digest: string; bytes: Buffer }[];
}

/**
 * Builds a stored form of a cache a client pushed (for tests and probes: the PUT handler
 * uses the same functions). 'buildkit-image-manifest' from an OCI index is the manifest
 * BuildKit would have written; 'regshim-buildkit' takes an index or list.
 */
export function buildStoredForm(form: StoredForm, pushed: Uint8Array, options: { indexLayerMediaType: string; algorithm?: DigestAlgorithm }): BuiltForm | undefined {
  const cache = classifyPushed(pushed, undefined);
  if (cache.kind !== 'index' && cache.kind !== 'buildkit-manifest') return undefined;
  const original = { digest: '', bytes: Buffer.from(pushed) };
  if (form === 'regshim-image') {
    const built = toImageForm(cache.parts, pushed, options.algorithm);
    original.digest = built.originalBlob.digest;
    return { form, bytes: built.bytes, digest: built.digest, blobs: [built.configBlob, original] };
  }
  if (cache.kind !== 'index') return form === 'buildkit-image-manifest' ? { form, bytes: original.bytes, digest: sha256(pushed), blobs: [] } : undefined;
  if (form === 'regshim-buildkit') {
    const converted = toImageManifest(cache.index, pushed, options.indexLayerMediaType, options.algorithm);
    original.digest = converted.indexBlob.digest;
    return { form, bytes: converted.bytes, digest: converted.digest, blobs: [original] };
  }
  const manifest = buildkitManifestOfIndex(cache.index, pushed);
  return manifest && { form, bytes: manifest.bytes, digest: manifest.digest, blobs: [] };
}

/** A manifest that may stand upstream for some bytes, and what the client then gets. */
export interface KeepingManifest {
  manifestDigest: string;
  source: IndexSource;
  /** The media type of the bytes the client gets: what it pushed, or the OCI index when made. */
  mediaType: string;
  rebuildable: boolean;
}

/**
 * The manifests that may stand upstream for these bytes: a cache a client pushed (kept as
 * a blob by regshim's forms), or an index regshim made (stored as a blob, made-index.ts).
 * Each replica works them out from the bytes alone; the preferred form comes first.
 */
export function manifestsKeeping(bytes: Uint8Array, digest: string, options: { preferred: WrittenForm; indexLayerMediaType: string; madeIndexes: boolean }): KeepingManifest[] {
  const cache = classifyPushed(bytes, undefined);
  const algorithm = algorithmOf(digest);
  const inOrder = <T>(buildkit: T[], image: T[]) => (options.preferred === 'image' ? [...image, ...buildkit] : [...buildkit, ...image]);
  if (cache.kind === 'buildkit-manifest') {
    return [{ manifestDigest: toImageForm(cache.parts, bytes, algorithm).digest, source: 'stored', mediaType: OCI_MANIFEST, rebuildable: false }];
  }
  if (cache.kind !== 'index') return [];
  const converted = toImageManifest(cache.index, bytes, options.indexLayerMediaType, algorithm);
  const kept = inOrder<KeepingManifest>(
    [{ manifestDigest: converted.digest, source: 'stored', mediaType: cache.parts.mediaType, rebuildable: isRebuildable(converted, bytes) }],
    [{ manifestDigest: toImageForm(cache.parts, bytes, algorithm).digest, source: 'stored', mediaType: cache.parts.mediaType, rebuildable: false }],
  );
  const native = options.madeIndexes && algorithm === 'sha256' ? buildkitManifestOfIndex(cache.index, bytes) : undefined;
  if (!native) return kept;
  const nativeParts: CacheParts = { ...cache.parts, mediaType: OCI_MANIFEST };
  return [
    ...kept,
    ...inOrder<KeepingManifest>(
      [{ manifestDigest: native.digest, source: 'made', mediaType: OCI_INDEX, rebuildable: true }],
      [{ manifestDigest: toImageForm(nativeParts, native.bytes).digest, source: 'made-from-stored', mediaType: OCI_INDEX, rebuildable: true }],
    ),
  ];
}

export type { CacheParts, Descriptor };
