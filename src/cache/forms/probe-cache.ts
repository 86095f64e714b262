// A tiny BuildKit cache and every stored form of it, for probing what a registry accepts
// (doctor) and for tests: one layer (an empty tar, gzipped), a cacheconfig naming it, and
// the index BuildKit would write for them. Pure and deterministic: the same bytes always.
import { BUILDKIT_CACHE_CONFIG, OCI_INDEX } from '../../registry/media-types.js';
import { indexText, sha256 } from '../convert.js';
import { type BuiltForm, type StoredForm, buildStoredForm } from './stored-forms.js';

// gzip -n -9 of a tar holding nothing (two 512-byte zero blocks).
const EMPTY_TAR_GZ = Buffer.from('H4sIAAAAAAACA2NgGAWjYBSMVAAALq+17wAEAAA=', 'base64');
const EMPTY_TAR_DIFF_ID = sha256(Buffer.alloc(1024));
const CREATED = '2025-01-01T00:00:00Z';

export interface ProbeCache {
  /** The index BuildKit would write (OCI index form). */
  index: Buffer;
  /** The blobs the index names: the layer, then the cacheconfig. Upload them first. */
  blobs: { digest: string; bytes: Buffer }[];
}

export function probeCache(): ProbeCache {
  const layer = { digest: sha256(EMPTY_TAR_GZ), bytes: EMPTY_TAR_GZ };
  const configBytes = Buffer.from(JSON.stringify({
    layers: [{ blob: layer.digest, parent: -1 }],
    records: [{ digest: `sha256:${'0'.repeat(64)}`, layers: [{ layer: 0, createdAt: CREATED }] }],
  }));
  const config = { digest: sha256(configBytes), bytes: configBytes };
  const entries = [
    { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layer.bytes.length, annotations: { 'buildkit/createdat': CREATED, 'containerd.io/uncompressed': EMPTY_TAR_DIFF_ID } },
    { mediaType: BUILDKIT_CACHE_CONFIG, digest: config.digest, size: configBytes.length },
  ];
  return { index: Buffer.from(indexText(OCI_INDEX, JSON.stringify(entries))), blobs: [layer, config] };
}

/** Every stored form of the probe cache: its manifest, and the blobs to upload before it (the cache's own first). */
export function probeForms(indexLayerMediaType: string): Record<StoredForm, BuiltForm> {
  const cache = probeCache();
  const build = (form: StoredForm): BuiltForm => {
    const built = buildStoredForm(form, cache.index, { indexLayerMediaType });
    if (!built) throw new Error(`the probe cache has no ${form} form`);
    return { ...built, blobs: [...cache.blobs, ...built.blobs] };
  };
  return { 'buildkit-image-manifest': build('buildkit-image-manifest'), 'regshim-buildkit': build('regshim-buildkit'), 'regshim-image': build('regshim-image') };
}
