// Media types regshim reads or writes, in one place (OCI image-spec "Media Types",
// Docker's Image Manifest V2 Schema 2).
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_MANIFEST_V1 = 'application/vnd.docker.distribution.manifest.v1+json';
export const DOCKER_MANIFEST_V1_SIGNED = 'application/vnd.docker.distribution.manifest.v1+prettyjws';
export const BUILDKIT_CACHE_CONFIG = 'application/vnd.buildkit.cacheconfig.v0';
export const OCI_IMAGE_CONFIG = 'application/vnd.oci.image.config.v1+json';

/** The default media type of the layer that holds the original index bytes. */
export const DEFAULT_INDEX_LAYER_MEDIA_TYPE = 'application/vnd.regshim.buildkit.cache.index.v1+json';

/** Manifest and index types: an index whose entries use one of these is not a cache. */
export const MANIFEST_TYPES: ReadonlySet<string> = new Set([
  OCI_INDEX,
  OCI_MANIFEST,
  DOCKER_LIST,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_V1,
  DOCKER_MANIFEST_V1_SIGNED,
]);

export const INDEX_TYPES: ReadonlySet<string> = new Set([OCI_INDEX, DOCKER_LIST]);

/**
 * Docker layer types and their OCI equivalents, used when a Docker-list cache becomes an
 * OCI image manifest (BuildKit's image-manifest form is always OCI-typed).
 */
export const DOCKER_TO_OCI_LAYER: ReadonlyMap<string, string> = new Map([
  ['application/vnd.docker.image.rootfs.diff.tar.gzip', 'application/vnd.oci.image.layer.v1.tar+gzip'],
  ['application/vnd.docker.image.rootfs.diff.tar', 'application/vnd.oci.image.layer.v1.tar'],
  ['application/vnd.docker.image.rootfs.diff.tar.zstd', 'application/vnd.oci.image.layer.v1.tar+zstd'],
  [
    'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
    'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  ],
]);
