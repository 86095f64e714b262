// Reading a cache back from the registry: what a manifest stands for, and the index bytes,
// from the index blob or, by tag when the blob is gone, rebuilt from the manifest. The rule
// that makes every replica give the same answer to a URL, for GET and HEAD alike:
// - by tag, the manifest decides: its index comes from the blob, or is rebuilt from the
//   manifest (any index BuildKit writes can be), or, failing both, the cache is gone;
// - by index digest, the blob decides as well: a replica that never saw the tag finds the
//   manifest only through the blob. So a replica that knows the cache serves it only while
//   both are there, and otherwise answers as one that never knew it: with the registry's
//   own answer for that URL (distribution 2.8 serves any blob there; strict registries 404).
// An index made from BuildKit's image-manifest cache (forms/made-index.ts) follows its manifest
// alone; by digest, a replica finds the manifest through the made index's blob when regshim
// could store one, else only a replica that has read the tag knows it.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LRUCache } from 'lru-cache';
import type { Config } from '../config.js';
import type { Logger } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import { OciError } from '../registry/errors.js';
import { OCI_INDEX, OCI_MANIFEST } from '../registry/media-types.js';
import type { UpstreamResponse } from '../registry/upstream.js';
import { type IndexReference, digestAs, readConvertedManifest, rebuildIndex, restoreIndex } from './convert.js';
import { classifyManifest } from './detect.js';
import { type DigestMap, type IndexPointer, type KnownIndex, type KnownManifest, isMade } from './digest-map.js';
import { type Exchange, UpstreamAnswer } from './exchange.js';
import type { FormChoice } from './forms/form-choice.js';
import { type MadeIndex, indexOfBuildkitManifest } from './forms/made-index.js';
import { manifestsKeeping } from './forms/stored-forms.js';

// How long a made index blob refused to a reader is not tried again: a pull-only fleet
// would otherwise pay a HEAD, a POST and a warning on every resolve.
const MADE_BLOB_RETRY_MS = 10 * 60_000;

export type CacheLookup = ReturnType<typeof createLookup>;

export function createLookup(config: Config, exchange: Exchange, map: DigestMap, log: Logger, metrics: Metrics, forms: FormChoice) {
  const { call, clientHeaders, getBlob, storeBlob } = exchange;
  const madeBlobsRefused = new LRUCache<string, true>({ max: 10_000, ttl: MADE_BLOB_RETRY_MS });

  /** What a manifest fetched from the upstream stands for; a made index is remembered with its bytes. */
  function describe(bytes: Buffer, manifestDigest: string): KnownManifest {
    const ref = readConvertedManifest(bytes);
    if (ref) return { kind: 'converted', source: 'stored', ref, rebuildable: rebuildIndex(bytes) !== undefined };
    const made = config.imageManifestAsIndex ? indexOfBuildkitManifest(bytes) : undefined;
    if (!made) return { kind: 'plain' };
    const index = knownMadeIndex(made, manifestDigest);
    map.remember(index);
    return { kind: 'converted', source: 'made', ref: { indexDigest: made.digest, indexMediaType: OCI_INDEX, indexSize: made.bytes.length }, rebuildable: true };
  }

  /**
   * Stores a made index as a blob of the repository, so that any replica finds its manifest
   * from the index digest alone (findByIndexDigest). With the client's credentials, or
   * regshim's own when it has them; a pull-only client and none of its own cannot, and
   * then only replicas that have read the tag answer for the digest: counted and logged,
   * and not tried again on reads for a while (a pusher's PUT always tries).
   */
  async function storeMadeIndex(req: IncomingMessage, res: ServerResponse, name: string, index: KnownIndex, on: 'read' | 'push' = 'read'): Promise<void> {
    const key = `${name}@${index.indexDigest}`;
    if (on === 'read' && madeBlobsRefused.has(key)) return;
    let refusal: string | undefined;
    try {
      // Looked at on every read, not remembered: no manifest references the blob, so a
      // registry's garbage collection removes it, and a replica that never read the tag
      // finds the manifest by the index digest only through it.
      const stored = await storeBlob(req, res, name, index.indexDigest, index.bytes);
      if (stored === 'present') return;
      refusal = stored === 'uploaded' ? undefined : `upstream answered ${stored.status}`;
    } catch (err) {
      refusal = (err as Error).message;
    }
    metrics.madeIndexBlobs.inc({ result: refusal === undefined ? 'stored' : 'refused' });
    if (refusal === undefined) return;
    madeBlobsRefused.set(key, true);
    log.warn(
      { repo: name, indexDigest: index.indexDigest, manifestDigest: index.manifestDigest, refusal },
      'index made from an image-manifest cache not stored as a blob: only replicas that read the tag answer for its digest',
    );
  }

  async function getManifest(req: IncomingMessage, res: ServerResponse, name: string, digest: string): Promise<Buffer> {
    const up = await call(req, res, { method: 'GET', path: `/v2/${name}/manifests/${digest}`, headers: clientHeaders(req, { accept: OCI_MANIFEST }) });
    if (up.status !== 200) throw new UpstreamAnswer(up);
    return up.body;
  }

  /**
   * The index a converted manifest stands for: its blob's bytes, checked against the digest;
   * or, when the blob is gone or damaged, the index rebuilt from the manifest.
   */
  async function loadIndex(req: IncomingMessage, res: ServerResponse, name: string, pointer: IndexPointer, from: { rebuild: boolean; manifestBytes?: Buffer | undefined }): Promise<KnownIndex> {
    const { ref, manifestDigest } = pointer;
    if (isMade(pointer.source)) {
      let pushed = from.manifestBytes ?? (await getManifest(req, res, name, manifestDigest));
      const kept = pointer.source === 'made-from-stored' ? readConvertedManifest(pushed) : undefined;
      if (kept) pushed = (await loadIndex(req, res, name, { source: 'stored', manifestDigest, ref: kept, rebuildable: false }, { rebuild: false })).bytes;
      const made = indexOfBuildkitManifest(pushed);
      if (made?.digest !== ref.indexDigest) throw unavailable(ref, manifestDigest, 404);
      return { ...knownMadeIndex(made, manifestDigest), source: pointer.source };
    }
    const blob = await getBlob(req, res, name, ref.indexDigest);
    if (blob.status !== 200 && blob.status !== 404) throw new UpstreamAnswer(blob);
    let bytes = blob.status === 200 ? restored(ref, blob.body) : undefined;
    if (bytes === undefined && from.rebuild && pointer.rebuildable) {
      const manifestBytes = from.manifestBytes;
      bytes = rebuildIndex(manifestBytes ?? (await getManifest(req, res, name, manifestDigest)));
      if (bytes) log.warn({ repo: name, indexDigest: ref.indexDigest, manifestDigest, blobStatus: blob.status }, 'index blob missing or damaged upstream; index rebuilt from its manifest');
    }
    if (bytes === undefined) throw unavailable(ref, manifestDigest, blob.status);
    return { kind: 'index', source: 'stored', indexDigest: ref.indexDigest, manifestDigest, mediaType: ref.indexMediaType, bytes, descriptors: countDescriptors(bytes), rebuildable: pointer.rebuildable };
  }

  /** Is the index blob still there? Throws the answer when it is not. */
  async function ensureBlob(req: IncomingMessage, res: ServerResponse, name: string, pointer: IndexPointer): Promise<void> {
    const head = await call(req, res, { method: 'HEAD', path: `/v2/${name}/blobs/${pointer.ref.indexDigest}`, headers: clientHeaders(req) });
    if (head.status === 200) return;
    if (head.status !== 404) throw new UpstreamAnswer(head);
    map.forget(pointer.ref.indexDigest);
    throw unavailable(pointer.ref, pointer.manifestDigest, 404);
  }

  /**
   * Finds, from the registry alone, the manifest that stands for a digest regshim answers
   * for: the bytes are a blob in the repository (what a client pushed, or an index regshim
   * made), and the manifests that may keep them follow from them (forms/stored-forms.ts).
   */
  async function findByIndexDigest(req: IncomingMessage, res: ServerResponse, name: string, indexDigest: string): Promise<KnownIndex | undefined> {
    let blob: UpstreamResponse;
    try {
      blob = await getBlob(req, res, name, indexDigest);
    } catch (err) {
      if (err instanceof OciError && err.code === 'MANIFEST_TOO_LARGE') return undefined;
      throw err;
    }
    if (blob.status !== 200 || digestAs(indexDigest, blob.body) !== indexDigest) return undefined;
    const options = { preferred: forms.current(), indexLayerMediaType: config.indexMediaType, madeIndexes: config.imageManifestAsIndex };
    for (const keeping of manifestsKeeping(blob.body, indexDigest, options)) {
      const check = await call(req, res, { method: 'HEAD', path: `/v2/${name}/manifests/${keeping.manifestDigest}`, headers: clientHeaders(req, { accept: OCI_MANIFEST }) });
      if (check.status === 404) continue;
      if (check.status !== 200) return undefined;
      const { manifestDigest, source, mediaType, rebuildable } = keeping;
      const known: KnownIndex = { kind: 'index', source, indexDigest, manifestDigest, mediaType, bytes: blob.body, descriptors: countDescriptors(blob.body), rebuildable };
      map.remember(known);
      return known;
    }
    return undefined;
  }

  /** The index made from BuildKit's image manifest that a client pushed and the image form keeps. */
  function madeFromKept(kept: KnownIndex): KnownIndex | undefined {
    const made = indexOfBuildkitManifest(kept.bytes);
    return made && { ...knownMadeIndex(made, kept.manifestDigest), source: 'made-from-stored' };
  }

  return { describe, loadIndex, ensureBlob, findByIndexDigest, storeMadeIndex, madeFromKept };
}

/** The index made from BuildKit's image manifest `manifestDigest`, as the digest map keeps it. */
export function knownMadeIndex(made: MadeIndex, manifestDigest: string): KnownIndex {
  return { kind: 'index', source: 'made', indexDigest: made.digest, manifestDigest, mediaType: OCI_INDEX, bytes: made.bytes, descriptors: countDescriptors(made.bytes), rebuildable: true };
}

function restored(ref: IndexReference, blob: Buffer): Buffer | undefined {
  try {
    return restoreIndex(ref, blob);
  } catch {
    return undefined;
  }
}

function unavailable(ref: IndexReference, manifestDigest: string, blobStatus: number): OciError {
  if (blobStatus === 200) {
    return new OciError('UNKNOWN', 'the upstream holds a cache index blob that does not match its manifest', { manifest: manifestDigest, index: ref.indexDigest });
  }
  return new OciError('MANIFEST_UNKNOWN', 'the cache index blob is gone from the repository, and this index cannot be rebuilt from its manifest', {
    manifest: manifestDigest,
    index: ref.indexDigest,
  });
}

function countDescriptors(bytes: Buffer): number {
  const detection = classifyManifest(bytes, undefined);
  return detection.kind === 'cache' ? detection.index.manifests.length : 0;
}
