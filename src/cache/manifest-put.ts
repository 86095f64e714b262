// PUT of /v2/<name>/manifests/<ref>: a cache index becomes an image manifest upstream
// (convert.ts), after its exact bytes are stored as a blob. Other manifests pass unchanged;
// for BuildKit's image-manifest cache, the index made from it is stored as a blob first.
import type { Request, Response } from 'express';
import { contextOf } from '../observability/access-log.js';
import { OciError } from '../registry/errors.js';
import { OCI_MANIFEST } from '../registry/media-types.js';
import { isDigest } from '../registry/routes.js';
import { forwardedRequestHeaders, header } from '../registry/upstream.js';
import { algorithmOf, importLimitProblems, isRebuildable, registryLimitProblems, sha256, toImageManifest } from './convert.js';
import type { CacheContext } from './context.js';
import { type CacheIndex, classifyManifest } from './detect.js';
import { knownMadeIndex } from './lookup.js';
import { indexOfBuildkitManifest } from './made-index.js';

/** What a cache PUT needs once converted: bytes and digests, none of the parsed documents. */
interface PreparedCache {
  readonly indexDigest: string;
  readonly indexMediaType: string;
  readonly manifestBytes: Buffer;
  readonly manifestDigest: string;
  readonly descriptors: number;
  readonly rebuildable: boolean;
  readonly importProblems: string[];
  readonly limitProblems: string[];
}

/**
 * Converts a cache index, keeping only what the upstream calls need, so the parsed index
 * (several times the size of its bytes) is garbage before the first await.
 */
function prepare(index: CacheIndex, body: Buffer, reference: string, indexLayerMediaType: string): PreparedCache {
  // A PUT by digest names its algorithm; the index blob is stored under it (lookup by sha512 works).
  const converted = toImageManifest(index, body, indexLayerMediaType, isDigest(reference) ? algorithmOf(reference) : 'sha256');
  const indexDigest = converted.indexBlob.digest;
  if (isDigest(reference) && indexDigest !== reference) {
    throw new OciError('DIGEST_INVALID', 'the manifest body does not match the digest in the URL', { reference, actual: indexDigest });
  }
  return {
    indexDigest,
    indexMediaType: index.mediaType,
    manifestBytes: converted.bytes,
    manifestDigest: converted.digest,
    descriptors: index.manifests.length,
    rebuildable: isRebuildable(converted, body),
    importProblems: importLimitProblems(index, body, converted),
    limitProblems: registryLimitProblems(converted),
  };
}

export function createPutHandler(ctx: CacheContext) {
  const { config, map, log, metrics } = ctx;
  const { call, clientHeaders, sendUpstream, storeBlob } = ctx.exchange;

  async function putCache(req: Request, res: Response, name: string, reference: string, body: Buffer, cache: PreparedCache): Promise<void> {
    const { indexDigest, manifestDigest } = cache;
    const logFields = { reqId: contextOf(req)?.id, repo: name, ref: reference, indexDigest, manifestDigest, descriptors: cache.descriptors };
    for (const problem of cache.importProblems) {
      metrics.importLimit.inc();
      log.warn({ ...logFields, problem }, 'cache stored, but BuildKit will not import it: every build that reads it will miss');
    }
    const blobFailure = await storeBlob(req, res, name, indexDigest, body);
    if (blobFailure) {
      log.warn({ ...logFields, status: blobFailure.status }, 'upstream refused the index blob; nothing was converted');
      return sendUpstream(req, res, blobFailure);
    }
    const target = isDigest(reference) ? manifestDigest : reference;
    const up = await call(req, res, {
      method: 'PUT',
      path: `/v2/${name}/manifests/${target}`,
      headers: clientHeaders(req, { 'content-type': OCI_MANIFEST }),
      body: cache.manifestBytes,
    });
    if (up.status !== 200 && up.status !== 201 && up.status !== 204) {
      // The index blob stays: no manifest references it, so the registry's garbage collection
      // removes it, and deleting it here could break a concurrent push of the same cache.
      log.warn({ ...logFields, status: up.status, limits: cache.limitProblems }, 'upstream refused the converted manifest');
      return sendUpstream(req, res, up);
    }
    const stored = header(up.headers, 'docker-content-digest');
    if (stored !== undefined && stored !== manifestDigest) {
      log.warn({ ...logFields, upstreamDigest: stored }, 'upstream stored the manifest under another digest');
    }
    map.remember({ kind: 'index', source: 'stored', indexDigest, manifestDigest, mediaType: cache.indexMediaType, bytes: body, descriptors: cache.descriptors, rebuildable: cache.rebuildable });
    metrics.conversions.inc({ direction: 'in' });
    log.info({ ...logFields, direction: 'in' }, 'cache index converted');
    // 201, never 202 (containerd fails on it), with the digest the client computed itself.
    res.writeHead(201, {
      'docker-content-digest': indexDigest,
      location: `/v2/${name}/manifests/${indexDigest}`,
      'content-length': '0',
      'docker-distribution-api-version': 'registry/2.0',
    });
    res.end();
  }

  return async function put(req: Request, res: Response): Promise<void> {
    const { name, reference } = ctx.route(req);
    const body: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const cache = classify(body, req.headers['content-type'], reference);
    if (cache) return putCache(req, res, name, reference, body, cache);
    const made = config.imageManifestAsIndex ? indexOfBuildkitManifest(body) : undefined;
    // The index old importers will be given, stored first with the pusher's credentials, so
    // that any replica finds it by digest as soon as the manifest is there (lookup.ts).
    const index = made && knownMadeIndex(made, sha256(body));
    if (index) await ctx.lookup.storeMadeIndex(req, res, name, index);
    const up = await call(req, res, { method: 'PUT', path: req.url ?? `/v2/${name}/manifests/${reference}`, headers: forwardedRequestHeaders(req.headers), body });
    if (index && up.status >= 200 && up.status < 300) map.remember(index);
    sendUpstream(req, res, up);
  };

  /** The prepared cache, undefined for a manifest that is not one; throws for a malformed cache. */
  function classify(body: Buffer, contentType: string | undefined, reference: string): PreparedCache | undefined {
    const detection = classifyManifest(body, contentType);
    if (detection.kind === 'invalid') throw new OciError('MANIFEST_INVALID', 'the BuildKit cache index is malformed', detection.detail);
    return detection.kind === 'cache' ? prepare(detection.index, body, reference, config.indexMediaType) : undefined;
  }
}
