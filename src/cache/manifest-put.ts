// PUT of /v2/<name>/manifests/<ref>: a cache index becomes an image manifest upstream
// (convert.ts), after its exact bytes are stored as a blob. Other manifests pass unchanged.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, Response } from 'express';
import { contextOf, markAction } from '../observability/access-log.js';
import { OciError } from '../registry/errors.js';
import { OCI_MANIFEST } from '../registry/media-types.js';
import { isDigest } from '../registry/routes.js';
import { upstreamRefusalOf } from '../registry/upstream-refusal.js';
import { type UpstreamResponse, forwardedRequestHeaders, header, resolveLocation } from '../registry/upstream.js';
import { algorithmOf, importLimitProblems, isRebuildable, registryLimitProblems, toImageManifest } from './convert.js';
import type { CacheContext } from './context.js';
import { type CacheIndex, classifyManifest } from './detect.js';

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
  const { call, clientHeaders, sendUpstream } = ctx.exchange;

  /** Uploads the exact index bytes as a blob of the repository, unless it is there already. */
  async function storeIndexBlob(req: IncomingMessage, res: ServerResponse, name: string, digest: string, bytes: Buffer): Promise<UpstreamResponse | undefined> {
    const exists = () => call(req, res, { method: 'HEAD', path: `/v2/${name}/blobs/${digest}`, headers: clientHeaders(req) });
    const head = await exists();
    if (head.status === 200) return undefined;
    // A 401 here would challenge for pull only; the POST's challenge asks for push, as the
    // client's own manifest PUT would have.
    if (head.status !== 404 && head.status !== 401) return head;
    const failed = await uploadBlob(req, res, name, digest, bytes);
    // Pushes of one new cache upload the same blob at once, and distribution fails a losing
    // commit (400 DIGEST_INVALID, or 500) while the winner's may not be visible yet: look
    // again, and upload once more if it is still missing.
    if (failed === undefined || failed.status === 401 || failed.status === 403) return failed;
    return (await exists()).status === 200 ? undefined : uploadBlob(req, res, name, digest, bytes);
  }

  /** POST + monolithic PUT of the index bytes; undefined once stored, else the refusal. */
  async function uploadBlob(req: IncomingMessage, res: ServerResponse, name: string, digest: string, bytes: Buffer): Promise<UpstreamResponse | undefined> {
    const post = await call(req, res, { method: 'POST', path: `/v2/${name}/blobs/uploads/`, headers: clientHeaders(req, { 'content-length': '0' }) });
    const location = header(post.headers, 'location');
    if (post.status !== 202 || location === undefined) return post;
    const url = resolveLocation(location, config.upstream);
    url.searchParams.set('digest', digest);
    const put = await call(req, res, {
      method: 'PUT',
      path: url.origin === config.upstream.origin ? url.pathname + url.search : url.href,
      // distribution reads any other Content-Type as a form and fails the PUT.
      headers: clientHeaders(req, { 'content-type': 'application/octet-stream' }),
      body: bytes,
    });
    return put.status === 201 ? undefined : put;
  }

  async function putCache(req: Request, res: Response, name: string, reference: string, body: Buffer, cache: PreparedCache): Promise<void> {
    const { indexDigest, manifestDigest } = cache;
    const logFields = { reqId: contextOf(req)?.id, repo: name, ref: reference, indexDigest, manifestDigest, descriptors: cache.descriptors };
    for (const problem of cache.importProblems) {
      metrics.importLimit.inc();
      log.warn({ ...logFields, problem }, 'cache stored, but BuildKit will not import it: every build that reads it will miss');
    }
    const blobFailure = await storeIndexBlob(req, res, name, indexDigest, body);
    if (blobFailure) {
      markAction(req, 'refused');
      log.warn({ ...logFields, status: blobFailure.status, ...refusalFields(blobFailure) }, 'upstream refused the index blob; nothing was converted');
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
      markAction(req, 'refused');
      log.warn({ ...logFields, status: up.status, ...refusalFields(up), limits: cache.limitProblems }, 'upstream refused the converted manifest');
      return sendUpstream(req, res, up);
    }
    const stored = header(up.headers, 'docker-content-digest');
    if (stored !== undefined && stored !== manifestDigest) {
      log.warn({ ...logFields, upstreamDigest: stored }, 'upstream stored the manifest under another digest');
    }
    map.remember({ kind: 'index', indexDigest, manifestDigest, mediaType: cache.indexMediaType, bytes: body, descriptors: cache.descriptors, rebuildable: cache.rebuildable });
    metrics.conversions.inc({ direction: 'in' });
    markAction(req, 'converted');
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
    const up = await call(req, res, { method: 'PUT', path: req.url ?? `/v2/${name}/manifests/${reference}`, headers: forwardedRequestHeaders(req.headers), body });
    sendUpstream(req, res, up);
  };

  /** The prepared cache, undefined for a manifest that is not one; throws for a malformed cache. */
  function classify(body: Buffer, contentType: string | undefined, reference: string): PreparedCache | undefined {
    const detection = classifyManifest(body, contentType);
    if (detection.kind === 'invalid') throw new OciError('MANIFEST_INVALID', 'the BuildKit cache index is malformed', detection.detail);
    return detection.kind === 'cache' ? prepare(detection.index, body, reference, config.indexMediaType) : undefined;
  }
}

/** The registry's own code and message for a refusal, as log fields (none when its body says nothing). */
function refusalFields(up: UpstreamResponse): { upstreamCode?: string; upstreamMessage?: string } {
  const refusal = upstreamRefusalOf(up.body);
  return refusal ? { upstreamCode: refusal.code, upstreamMessage: refusal.message } : {};
}
