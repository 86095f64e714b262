// A BuildKit cache as an ordinary OCI image, for registries that accept only media types
// they know (Quay's defaults, GitLab's table). Pure: bytes and JSON in, data out.
// The manifest's config is a valid image config (application/vnd.oci.image.config.v1+json)
// and every layer has a standard layer type: the cache's layers, then the cacheconfig, then
// the exact bytes the client pushed, so the registry's garbage collection keeps them all.
// The config's rootfs.diff_ids and history match the layers one for one, as registries that
// parse images check. Deterministic (no clock): the same pushed bytes give the same config
// and manifest on every replica. BuildKit cannot read this form without regshim.
import { DOCKER_TO_OCI_LAYER, OCI_IMAGE_CONFIG, OCI_MANIFEST } from '../../registry/media-types.js';
import { isVerifiableDigest } from '../../registry/routes.js';
import { type DigestAlgorithm, FORM_ANNOTATION, IMAGE_FORM, INDEX_DIGEST_ANNOTATION, INDEX_MEDIA_TYPE_ANNOTATION, digestWith, sha256 } from '../convert.js';
import type { Descriptor } from '../detect.js';

const OCI_TAR = 'application/vnd.oci.image.layer.v1.tar';
/** Layer types every image registry accepts, and which are compressed (diff_id != digest). */
const STANDARD_LAYERS: ReadonlyMap<string, boolean> = new Map([
  [OCI_TAR, false],
  ['application/vnd.oci.image.layer.v1.tar+gzip', true],
  ['application/vnd.oci.image.layer.v1.tar+zstd', true],
]);
const UNCOMPRESSED_ANNOTATION = 'containerd.io/uncompressed';

/** The cache a client pushed: its entries, whichever form it came in. */
export interface CacheParts {
  /** The media type of what was pushed: OCI index, Docker list, or OCI image manifest. */
  mediaType: string;
  layers: Descriptor[];
  /** The cacheconfig descriptor. */
  config: Descriptor;
}

export interface ImageForm {
  bytes: Buffer;
  digest: string;
  /** The image config, uploaded as a blob before the manifest. */
  configBlob: { bytes: Buffer; digest: string };
  /** The descriptor of the pushed bytes, uploaded as a blob before the manifest. */
  originalBlob: Descriptor;
  /** How many layers the manifest has: the cache's, its cacheconfig and the pushed bytes. */
  layerCount: number;
}

/** The image-form manifest for a pushed cache; `algorithm` is the one the client's digest uses. */
export function toImageForm(parts: CacheParts, original: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): ImageForm {
  const originalDigest = digestWith(algorithm, original);
  const originalBlob: Descriptor = { mediaType: OCI_TAR, digest: originalDigest, size: original.byteLength };
  const layers = [...parts.layers.map(asStandardLayer), asStandardLayer(parts.config), originalBlob];
  const configBytes = Buffer.from(imageConfigText(layers, parts.layers.length));
  const configBlob = { bytes: configBytes, digest: sha256(configBytes) };
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_IMAGE_CONFIG, digest: configBlob.digest, size: configBytes.length },
    layers,
    annotations: { [FORM_ANNOTATION]: IMAGE_FORM, [INDEX_DIGEST_ANNOTATION]: originalDigest, [INDEX_MEDIA_TYPE_ANNOTATION]: parts.mediaType },
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  return { bytes, digest: sha256(bytes), configBlob, originalBlob, layerCount: layers.length };
}

/** The descriptor with a standard layer type; annotations (BuildKit's diff ID among them) kept. */
function asStandardLayer(d: Descriptor): Descriptor {
  const mapped = DOCKER_TO_OCI_LAYER.get(d.mediaType) ?? d.mediaType;
  const mediaType = STANDARD_LAYERS.has(mapped) ? mapped : OCI_TAR;
  return mediaType === d.mediaType ? d : { ...d, mediaType };
}

/**
 * A valid OCI image config for these layers: rootfs.diff_ids one per layer (a compressed
 * layer's from its containerd.io/uncompressed annotation, as BuildKit records it; a layer
 * typed as a plain tar is its own diff ID), and one history entry per layer, none empty.
 */
function imageConfigText(layers: Descriptor[], cacheLayers: number): string {
  const diffIds = layers.map((l) => (STANDARD_LAYERS.get(l.mediaType) ? uncompressedDigest(l) : l.digest));
  const history = layers.map((_, i) => ({ created_by: i < cacheLayers ? 'BuildKit cache layer' : i === cacheLayers ? 'BuildKit cache config' : 'BuildKit cache manifest as pushed', comment: 'regshim' }));
  // The platform is unknown/unknown, as BuildKit marks manifests that are not runnable images.
  return JSON.stringify({ architecture: 'unknown', os: 'unknown', config: {}, rootfs: { type: 'layers', diff_ids: diffIds }, history });
}

function uncompressedDigest(layer: Descriptor): string {
  const annotated = layer.annotations?.[UNCOMPRESSED_ANNOTATION];
  return annotated !== undefined && isVerifiableDigest(annotated) ? annotated : layer.digest;
}
