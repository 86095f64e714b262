// Reading a cache from a registry, or through a running regshim, for `regshim inspect`: the
// stored manifest, the index a client gets back, and (with --check-blobs) which blobs are gone.
import { rebuildIndex, restoreIndex } from '../cache/convert.js';
import { indexOfBuildkitManifest } from '../cache/forms/made-index.js';
import { DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST } from '../registry/media-types.js';
import { upstreamRefusalOf } from '../registry/upstream-refusal.js';
import { type UpstreamRequest, type UpstreamResponse, header } from '../registry/upstream.js';
import type { BlobCheck, FetchedForm, InspectInput } from './facts.js';
import { recognise } from './forms.js';
import { recordsLosingLayers } from './records.js';

/** What inspect needs of a registry: regshim's own upstream client (registry/upstream.ts). */
export interface RegistryClient {
  request(req: UpstreamRequest): Promise<UpstreamResponse>;
  fetchElsewhere(url: URL, maxBodyBytes: number): Promise<UpstreamResponse>;
  readonly origin: string;
}

/** The cache cannot be read at all: exit 1, with this message. */
export class InspectError extends Error {
  override name = 'InspectError';
}

export interface FetchOptions {
  maxManifestBytes: number;
  /** --image-manifest-as-index: BuildKit's image manifest is given to index readers as an index. */
  imageManifestAsIndex: boolean;
  checkBlobs: boolean;
  /** HEADs in flight at once for --check-blobs. */
  concurrency: number;
}

// Stored forms are image manifests; an index stored as it is needs the index types too
// (distribution answers 404 to an Accept that does not name the stored type).
const STORED_ACCEPT = [OCI_MANIFEST, DOCKER_MANIFEST].join(', ');
const ANY_ACCEPT = [OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST].join(', ');
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export async function fetchCache(client: RegistryClient, name: string, reference: string, opts: FetchOptions): Promise<InspectInput> {
  const path = `/v2/${name}/manifests/${reference}`;
  const get = (accept: string) => client.request({ method: 'GET', path, headers: { accept }, maxBodyBytes: opts.maxManifestBytes });
  let res = await get(STORED_ACCEPT);
  if (res.status === 404) res = await get(ANY_ACCEPT);
  if (res.status !== 200) throw new InspectError(`GET ${client.origin}${path} answered ${describe(res)}`);
  const found = recognise(res.body);
  if (!found) throw new InspectError(`${name}:${reference} is not a BuildKit cache (neither an index of cache blobs, nor an image manifest with a cacheconfig)`);
  const stored: FetchedForm = { ...found, bytes: res.body, digest: header(res.headers, 'docker-content-digest') };
  const served = found.reading.restores ? await restored(client, name, stored, opts) : madeFrom(stored, opts);
  const blobs = opts.checkBlobs ? await checkBlobs(client, name, stored, opts) : undefined;
  return { reference: `${name}:${reference}`, stored, served, blobs };
}

/** The index a client of regshim gets for a stored form: its blob, else rebuilt from the manifest. */
async function restored(client: RegistryClient, name: string, stored: FetchedForm, opts: FetchOptions): Promise<FetchedForm | string> {
  const ref = stored.reading.restores;
  if (!ref) return stored;
  const blob = await getBlob(client, name, ref.indexDigest, opts.maxManifestBytes);
  let bytes: Buffer | undefined;
  if (blob.status === 200) {
    try {
      bytes = restoreIndex(ref, blob.body);
    } catch {
      bytes = undefined;
    }
  }
  bytes ??= rebuildIndex(stored.bytes);
  if (!bytes) return `the index blob ${ref.indexDigest} answered ${describe(blob)}, and this index cannot be rebuilt from its manifest: a client gets 404`;
  const found = recognise(bytes);
  if (!found) return `the index blob ${ref.indexDigest} is not a cache index`;
  return madeFrom({ ...found, bytes, digest: ref.indexDigest }, opts);
}

/** BuildKit's image manifest, as regshim gives it to a client that names the OCI index: the index made from it. */
function madeFrom(form: FetchedForm, opts: FetchOptions): FetchedForm {
  if (!form.reading.makesIndex || !opts.imageManifestAsIndex) return form;
  const made = indexOfBuildkitManifest(form.bytes);
  const found = made && recognise(made.bytes);
  return made && found ? { ...found, bytes: made.bytes, digest: made.digest, made: true } : form;
}

async function getBlob(client: RegistryClient, name: string, digest: string, maxBodyBytes: number): Promise<UpstreamResponse> {
  let res = await client.request({ method: 'GET', path: `/v2/${name}/blobs/${digest}`, headers: {}, maxBodyBytes });
  for (let hops = 0; hops < 3 && REDIRECTS.has(res.status); hops++) {
    const location = header(res.headers, 'location');
    if (location === undefined) break;
    const target = new URL(location, client.origin);
    // Object storage (S3, GCS) gets no registry credentials.
    res = target.origin === client.origin
      ? await client.request({ method: 'GET', path: target.pathname + target.search, headers: {}, maxBodyBytes })
      : await client.fetchElsewhere(target, maxBodyBytes);
  }
  return res;
}

/** HEADs every blob of the cache, `concurrency` at a time; reads the cacheconfig to count the records hit. */
async function checkBlobs(client: RegistryClient, name: string, stored: FetchedForm, opts: FetchOptions): Promise<BlobCheck> {
  const { reading } = stored;
  const digests = [...new Set(reading.blobs)];
  const statuses = new Map<string, number>();
  let next = 0;
  const worker = async () => {
    while (next < digests.length) {
      const digest = digests[next++] as string;
      const res = await client.request({ method: 'HEAD', path: `/v2/${name}/blobs/${digest}`, headers: {}, maxBodyBytes: 0 });
      statuses.set(digest, res.status);
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, digests.length) }, worker));
  // A redirect to object storage is a blob that is there.
  const present = (status: number) => status === 200 || REDIRECTS.has(status);
  const missing = digests.filter((d) => statuses.get(d) === 404);
  const unchecked = digests.filter((d) => !present(statuses.get(d) ?? 0) && statuses.get(d) !== 404).map((digest) => ({ digest, status: statuses.get(digest) ?? 0 }));
  let records;
  if (!missing.includes(reading.config.digest)) {
    const config = await getBlob(client, name, reading.config.digest, Math.max(opts.maxManifestBytes, 16 * 1024 * 1024));
    if (config.status === 200) records = recordsLosingLayers(config.body, new Set(missing));
  }
  return { checked: digests.length, missing, unchecked, records };
}

/** A status with the registry's own code and message, when it sent them. */
export function describe(res: UpstreamResponse): string {
  const refusal = upstreamRefusalOf(res.body);
  return refusal ? `${res.status} ${refusal.code}: ${refusal.message}` : String(res.status);
}
