// Reading a cache back from the registry: what a manifest stands for, and the index bytes,
// from the index blob or, by tag when the blob is gone, rebuilt from the manifest. The rule
// that makes every replica give the same answer to a URL, for GET and HEAD alike:
// - by tag, the manifest decides: its index comes from the blob, or is rebuilt from the
//   manifest (any index BuildKit writes can be), or, failing both, the cache is gone;
// - by index digest, the blob decides as well: a replica that never saw the tag finds the
//   manifest only through the blob. So a replica that knows the cache serves it only while
//   both are there, and otherwise answers as one that never knew it: with the registry's
//   own answer for that URL (distribution 2.8 serves any blob there; strict registries 404).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config.js';
import type { Logger } from '../observability/log.js';
import { OciError } from '../registry/errors.js';
import { OCI_MANIFEST } from '../registry/media-types.js';
import type { UpstreamResponse } from '../registry/upstream.js';
import { type IndexReference, algorithmOf, digestAs, isRebuildable, readConvertedManifest, rebuildIndex, restoreIndex, toImageManifest } from './convert.js';
import { classifyManifest } from './detect.js';
import type { DigestMap, IndexPointer, KnownIndex, KnownManifest } from './digest-map.js';
import { type Exchange, UpstreamAnswer } from './exchange.js';

export type CacheLookup = ReturnType<typeof createLookup>;

export function createLookup(config: Config, exchange: Exchange, map: DigestMap, log: Logger) {
  const { call, clientHeaders, getBlob } = exchange;

  /** What a manifest fetched from the upstream stands for. */
  function describe(bytes: Buffer): KnownManifest {
    const ref = readConvertedManifest(bytes);
    return ref ? { kind: 'converted', ref, rebuildable: rebuildIndex(bytes) !== undefined } : { kind: 'plain' };
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
  async function loadIndex(req: IncomingMessage, res: ServerResponse, name: string, pointer: IndexPointer, from: { rebuild: boolean; manifestBytes?: Buffer }): Promise<KnownIndex> {
    const { ref, manifestDigest } = pointer;
    const blob = await getBlob(req, res, name, ref.indexDigest);
    if (blob.status !== 200 && blob.status !== 404) throw new UpstreamAnswer(blob);
    let bytes = blob.status === 200 ? restored(ref, blob.body) : undefined;
    if (bytes === undefined && from.rebuild && pointer.rebuildable) {
      const manifestBytes = from.manifestBytes;
      bytes = rebuildIndex(manifestBytes ?? (await getManifest(req, res, name, manifestDigest)));
      if (bytes) log.warn({ repo: name, indexDigest: ref.indexDigest, manifestDigest, blobStatus: blob.status }, 'index blob missing or damaged upstream; index rebuilt from its manifest');
    }
    if (bytes === undefined) throw unavailable(ref, manifestDigest, blob.status);
    return { kind: 'index', indexDigest: ref.indexDigest, manifestDigest, mediaType: ref.indexMediaType, bytes, descriptors: countDescriptors(bytes), rebuildable: pointer.rebuildable };
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
   * Finds, from the registry alone, the converted manifest of an index digest: the index
   * bytes are a blob in the repository, and the manifest's digest follows from them.
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
    const detection = classifyManifest(blob.body, undefined);
    if (detection.kind !== 'cache') return undefined;
    const converted = toImageManifest(detection.index, blob.body, config.indexMediaType, algorithmOf(indexDigest));
    const check = await call(req, res, { method: 'HEAD', path: `/v2/${name}/manifests/${converted.digest}`, headers: clientHeaders(req, { accept: OCI_MANIFEST }) });
    if (check.status !== 200) return undefined;
    const known: KnownIndex = {
      kind: 'index',
      indexDigest,
      manifestDigest: converted.digest,
      mediaType: detection.index.mediaType,
      bytes: blob.body,
      descriptors: detection.index.manifests.length,
      rebuildable: isRebuildable(converted, blob.body),
    };
    map.remember(known);
    return known;
  }

  return { describe, loadIndex, ensureBlob, findByIndexDigest };
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
