// SIMULATION of what registries that filter manifests check on a manifest PUT, one profile
// per registry family, written from their documents (named per profile below). Each check
// returns the registry's refusal (status and OCI error body) or undefined to accept.
// strict-gate.ts runs them in front of the real registry.

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const INDEX_TYPES = new Set([OCI_INDEX, DOCKER_LIST]);
const MANIFEST_TYPES = new Set([...INDEX_TYPES, OCI_MANIFEST, DOCKER_MANIFEST]);
const OCI_IMAGE_CONFIG = 'application/vnd.oci.image.config.v1+json';
const DOCKER_IMAGE_CONFIG = 'application/vnd.docker.container.image.v1+json';

export type GateProfile = 'gcr' | 'quay' | 'gitlab';

export interface Refusal {
  status: number;
  body: string;
}

export interface Descriptor {
  mediaType?: string;
  digest?: string;
  size?: number;
}

export interface ManifestDoc {
  mediaType?: string;
  artifactType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

/** What a check may read from the registry behind: a blob's bytes, undefined when missing. */
export type BlobReader = (digest: string) => Promise<Buffer | undefined>;

export interface Profile {
  /** Does the registry keep an index whose entries are blobs (and so serve it)? */
  storesIndexOfBlobs: boolean;
  check(doc: ManifestDoc, type: string, readBlob: BlobReader): Promise<Refusal | undefined>;
}

function ociError(status: number, code: string, message: string, detail?: string): Refusal {
  return { status, body: JSON.stringify({ errors: [{ code, message, ...(detail === undefined ? {} : { detail }) }] }) };
}

/** The first entry of an index or list that is not a manifest: a blob, as in a BuildKit cache index. */
function blobEntry(doc: ManifestDoc, type: string): Descriptor | undefined {
  return INDEX_TYPES.has(type) ? doc.manifests?.find((m) => !MANIFEST_TYPES.has(m.mediaType ?? '')) : undefined;
}

// GCR (and Artifact Registry, ECR, distribution 3 alike): an index must list manifests.
// Wording as users reported it (cache-formats.md, Strict registries).
const gcr: Profile = {
  storesIndexOfBlobs: false,
  async check(doc, type) {
    const child = blobEntry(doc, type);
    if (!child) return undefined;
    return ociError(400, 'MANIFEST_INVALID', `Failed to parse manifest: Image index child manifest not supported: ${child.mediaType ?? ''}.`);
  },
};

// Red Hat Quay with its defaults: FEATURE_GENERAL_OCI_SUPPORT on, IGNORE_UNKNOWN_MEDIATYPES
// false, nothing added to the allowed artifact types. Documents followed:
// - Red Hat Quay 3, "Manage Red Hat Quay", chapter "Configuring artifact types"
//   (access.redhat.com/documentation/en-us/red_hat_quay/3/html/manage_red_hat_quay/supported-oci-media-types):
//   the built-in table (Helm; Cosign, SPDX, Syft, CycloneDX, in-toto under the image config;
//   the OPA policy type), ALLOWED_OCI_ARTIFACT_TYPES (config type -> its layer types) and
//   IGNORE_UNKNOWN_MEDIATYPES (default false);
// - "Configure Supported OCI Types" of Pulp's container registry (pulp_container docs and
//   its settings.py defaults), the same scheme, which lists the default families: OCI
//   images, Helm, cosign/SBOMs/attestations, source containers, Singularity, Conftest, WASM.
// Quay validates a manifest against a JSON schema whose enums are these types; a refusal is
// 400 MANIFEST_INVALID "manifest data does not match schema: '<type>' is not one of [...]"
// (as Quay answered for an in-toto layer before it was allowed). For an image config it
// also reads the config and checks it against the layers (rootfs.diff_ids, and the history
// entries that are not empty_layer, one per layer), as registries that parse images do.
const OCI_LAYERS = [
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
];
const DOCKER_LAYERS = [
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
];
export const QUAY_DEFAULT_TYPES: ReadonlyMap<string, readonly string[]> = new Map([
  [OCI_IMAGE_CONFIG, [
    ...OCI_LAYERS,
    // cosign signatures and attestations, SBOMs (SPDX, CycloneDX, Syft), in-toto
    'application/vnd.dev.cosign.simplesigning.v1+json',
    'application/vnd.dsse.envelope.v1+json',
    'text/spdx', 'text/spdx+xml', 'text/spdx+json',
    'application/vnd.cyclonedx', 'application/vnd.cyclonedx+xml', 'application/vnd.cyclonedx+json',
    'application/vnd.syft+json',
    'application/vnd.in-toto+json',
  ]],
  [DOCKER_IMAGE_CONFIG, DOCKER_LAYERS],
  ['application/vnd.cncf.helm.config.v1+json', ['application/tar+gzip', 'application/vnd.cncf.helm.chart.content.v1.tar+gzip', 'application/vnd.cncf.helm.chart.provenance.v1.prov']],
  ['application/vnd.oci.source.image.config.v1+json', ['application/vnd.oci.image.layer.v1.tar+gzip']],
  ['application/vnd.sylabs.sif.config.v1+json', ['application/vnd.sylabs.sif.layer.v1.sif', 'application/vnd.sylabs.sif.layer.v1+tar']],
  ['application/vnd.cncf.openpolicyagent.config.v1+json', [
    'application/vnd.cncf.openpolicyagent.policy.layer.v1+rego',
    'application/vnd.cncf.openpolicyagent.data.layer.v1+json',
    'application/vnd.cncf.openpolicyagent.manifest.layer.v1+json',
    'application/vnd.cncf.openpolicyagent.rego.layer.v1+rego',
  ]],
  ['application/vnd.wasm.config.v1+json', ['application/vnd.wasm.content.layer.v1+wasm']],
]);

function notOneOf(value: string, allowed: Iterable<string>): Refusal {
  const list = [...allowed].map((t) => `'${t}'`).join(', ');
  return ociError(400, 'MANIFEST_INVALID', `manifest data does not match schema: '${value}' is not one of [${list}]`);
}

const quay: Profile = {
  storesIndexOfBlobs: false,
  async check(doc, type, readBlob) {
    if (!MANIFEST_TYPES.has(type)) return notOneOf(type, MANIFEST_TYPES);
    // Quay's index schema requires a platform for each entry, which blob entries lack.
    if (blobEntry(doc, type)) return ociError(400, 'MANIFEST_INVALID', "manifest data does not match schema: 'platform' is a required property");
    if (INDEX_TYPES.has(type)) return undefined;
    const configType = doc.config?.mediaType ?? '';
    const layerTypes = QUAY_DEFAULT_TYPES.get(configType);
    if (layerTypes === undefined) return notOneOf(configType, QUAY_DEFAULT_TYPES.keys());
    const unknown = (doc.layers ?? []).find((l) => !layerTypes.includes(l.mediaType ?? ''));
    if (unknown) return notOneOf(unknown.mediaType ?? '', layerTypes);
    if (configType !== OCI_IMAGE_CONFIG && configType !== DOCKER_IMAGE_CONFIG) return undefined;
    return imageConfigProblem(doc, readBlob);
  },
};

/** An image config that does not describe the manifest's layers, one for one. */
async function imageConfigProblem(doc: ManifestDoc, readBlob: BlobReader): Promise<Refusal | undefined> {
  const bytes = doc.config?.digest ? await readBlob(doc.config.digest) : undefined;
  if (bytes === undefined) return ociError(400, 'MANIFEST_BLOB_UNKNOWN', 'blob unknown to registry', doc.config?.digest);
  let config: { rootfs?: { type?: string; diff_ids?: unknown[] }; history?: { empty_layer?: boolean }[] };
  try {
    config = JSON.parse(bytes.toString('utf8')) as typeof config;
  } catch {
    return ociError(400, 'MANIFEST_INVALID', 'the image config is not JSON');
  }
  const layers = doc.layers?.length ?? 0;
  const diffIds = config.rootfs?.diff_ids;
  if (config.rootfs?.type !== 'layers' || !Array.isArray(diffIds) || diffIds.length !== layers) {
    return ociError(400, 'MANIFEST_INVALID', `the image config's rootfs.diff_ids name ${Array.isArray(diffIds) ? diffIds.length : 'no'} layers, the manifest ${layers}`);
  }
  const filled = (config.history ?? []).filter((h) => h.empty_layer !== true).length;
  if (config.history !== undefined && filled !== layers) {
    return ociError(400, 'MANIFEST_INVALID', `the image config's history has ${filled} non-empty entries, the manifest ${layers} layers`);
  }
  return undefined;
}

// GitLab container registry with its metadata database: every media type a manifest names
// (its own, its config's, each reference's, its artifactType) must be a row of the
// media_types table. Document followed: the registry's docs-gitlab/supported-media-types.md
// ("Supported Media Types": anything outside the list gets 400 Bad Request with detail
// "unknown media type"), and its handler, which answers MANIFEST_INVALID with the detail
// "unknown media type: <type>". The table holds the BuildKit cacheconfig (MR !719, which
// also stores BuildKit's index of blobs), so it keeps an index of blobs.
export const GITLAB_MEDIA_TYPES: ReadonlySet<string> = new Set([
  'text/spdx', 'text/plain; charset=utf-8', 'text/html; charset=utf-8', 'binary/octet-stream',
  'appliciation/vnd.sylabs.sif.layer.tar', 'application/x-yaml',
  'application/vnd.wasm.content.layer.v1+wasm', 'application/vnd.wasm.config.v1+json',
  'application/vnd.vivsoft.enbuild.config.v1+json', 'application/vnd.unknown.config.v1+json',
  'application/vnd.sylabs.sif.layer.v1.sif', 'application/vnd.sylabs.sif.config.v1+json', 'application/vnd.sylabs.sif.config.v1',
  'application/vnd.spack.package', 'application/vnd.oras.config.v1+json',
  OCI_MANIFEST, 'application/vnd.oci.image.layer.v1.tar+zstd', 'application/vnd.oci.image.layer.v1.tar+gzip+encrypted',
  'application/vnd.oci.image.layer.v1.tar+gzip', 'application/vnd.oci.image.layer.v1.tar+encrypted', 'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip', 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  OCI_INDEX, OCI_IMAGE_CONFIG,
  'application/vnd.module.wasm.content.layer.v1+wasm', 'application/vnd.module.wasm.config.v1+json',
  'application/vnd.gitlab.packages.npm.config.v2+json',
  'application/vnd.gardener.landscaper.componentdefinition.v1+json', 'application/vnd.gardener.landscaper.blueprint.v1+tar+gzip',
  'application/vnd.gardener.cloud.cnudie.component.config.v1+json', 'application/vnd.gardener.cloud.cnudie.component-descriptor.v2+yaml+tar',
  'application/vnd.gardener.cloud.cnudie.component-descriptor.v2+json',
  'application/vnd.dsse.envelope.v1+json', 'application/vnd.docker.plugin.v1+json',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', 'application/vnd.docker.image.rootfs.diff.tar',
  'application/vnd.docker.image.rootfs.diff.tar.gzip', DOCKER_MANIFEST,
  'application/vnd.docker.distribution.manifest.v1+prettyjws', 'application/vnd.docker.distribution.manifest.v1+json',
  DOCKER_LIST, DOCKER_IMAGE_CONFIG, 'application/vnd.docker.container.image.rootfs.diff+x-gtar',
  'application/vnd.dev.cosign.simplesigning.v1+json',
  'application/vnd.cncf.openpolicyagent.policy.layer.v1+rego', 'application/vnd.cncf.openpolicyagent.manifest.layer.v1+json',
  'application/vnd.cncf.openpolicyagent.data.layer.v1+json', 'application/vnd.cncf.openpolicyagent.config.v1+json',
  'application/vnd.cncf.helm.config.v1+json', 'application/vnd.cncf.helm.chart.provenance.v1.prov',
  'application/vnd.cncf.helm.chart.meta.layer.v1+json', 'application/vnd.cncf.helm.chart.content.v1.tar+gzip',
  'application/vnd.cncf.helm.chart.content.layer.v1+tar', 'application/vnd.cncf.flux.content.v1.tar+gzip',
  'application/vnd.cncf.flux.config.v1+json', 'application/vnd.cncf.artifacthub.repository-metadata.layer.v1.yaml',
  'application/vnd.cncf.artifacthub.config.v1+yaml', 'application/vnd.cnab.config.v1+json', 'application/vnd.cnab.bundle.config.v1+json',
  'application/vnd.buildkit.cacheconfig.v0',
  'application/vnd.aquasec.trivy.db.layer.v1.tar+gzip', 'application/vnd.aquasec.trivy.config.v1+json',
  'application/vnd.ansible.collection', 'application/vnd.acme.rocket.docs.layer.v1+tar', 'application/vnd.acme.rocket.config',
  'application/tar+gzip', 'application/sap-cnudie+tar', 'application/octet-stream', 'application/json',
]);

const gitlab: Profile = {
  storesIndexOfBlobs: true,
  async check(doc, type) {
    const named = [type, doc.artifactType, doc.config?.mediaType, ...(doc.layers ?? []).map((l) => l.mediaType), ...(doc.manifests ?? []).map((m) => m.mediaType)];
    const unknown = named.find((t) => t !== undefined && !GITLAB_MEDIA_TYPES.has(t));
    return unknown === undefined ? undefined : ociError(400, 'MANIFEST_INVALID', 'manifest invalid', `unknown media type: ${unknown}`);
  },
};

export const PROFILES: Readonly<Record<GateProfile, Profile>> = { gcr, quay, gitlab };
