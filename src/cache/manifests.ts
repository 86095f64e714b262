// PUT, GET, HEAD and DELETE of /v2/<name>/manifests/<ref>: where cache indexes become
// image manifests on the way in and come back byte for byte on the way out. Everything
// that is not a cache goes to the upstream untouched.
import type { Request, Response } from 'express';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config.js';
import { contextOf } from '../observability/access-log.js';
import type { Logger } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import { accepts, parseAccept, withType } from '../registry/accept.js';
import { OciError } from '../registry/errors.js';
import { DOCKER_LIST, OCI_INDEX, OCI_MANIFEST } from '../registry/media-types.js';
import { isDigest } from '../registry/routes.js';
import { type Headers, type Upstream, type UpstreamResponse, forwardedRequestHeaders, header, resolveLocation } from '../registry/upstream.js';
import { digestAs, importLimitProblems, readConvertedManifest, registryLimitProblems, restoreIndex, sha256, toImageManifest } from './convert.js';
import { type CacheIndex, classifyManifest } from './detect.js';
import type { DigestMap, KnownIndex, KnownManifest } from './digest-map.js';
import { UpstreamAnswer, createExchange } from './exchange.js';

export interface ManifestDeps {
  config: Config;
  upstream: Upstream;
  map: DigestMap;
  log: Logger;
  metrics: Metrics;
  passthrough: (req: IncomingMessage, res: ServerResponse) => void;
}

export function createManifestHandlers(deps: ManifestDeps) {
  const { config, upstream, map, log, metrics } = deps;
  const { call, clientHeaders, sendUpstream, sendIndex, getBlob } = createExchange(config, upstream);

  function describe(bytes: Buffer): KnownManifest {
    const ref = readConvertedManifest(bytes);
    return ref ? { kind: 'converted', ref } : { kind: 'plain' };
  }

  async function loadIndex(req: IncomingMessage, res: ServerResponse, name: string, manifestDigest: string, ref: KnownManifest & { kind: 'converted' }): Promise<KnownIndex> {
    const up = await getBlob(req, res, name, ref.ref.indexDigest);
    if (up.status !== 200) throw new UpstreamAnswer(up);
    let bytes: Buffer;
    try {
      bytes = restoreIndex(ref.ref, up.body);
    } catch (err) {
      throw new OciError('UNKNOWN', 'the upstream holds a cache index blob that does not match its manifest', {
        manifest: manifestDigest,
        reason: (err as Error).message,
      });
    }
    return { kind: 'index', indexDigest: ref.ref.indexDigest, manifestDigest, mediaType: ref.ref.indexMediaType, bytes, descriptors: countDescriptors(bytes) };
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
    const converted = toImageManifest(detection.index, blob.body, config.indexMediaType);
    const check = await call(req, res, {
      method: 'HEAD',
      path: `/v2/${name}/manifests/${converted.digest}`,
      headers: clientHeaders(req, { accept: OCI_MANIFEST }),
    });
    if (check.status !== 200) return undefined;
    const known: KnownIndex = {
      kind: 'index',
      indexDigest,
      manifestDigest: converted.digest,
      mediaType: detection.index.mediaType,
      bytes: blob.body,
      descriptors: detection.index.manifests.length,
    };
    map.remember(known);
    return known;
  }

  function logRestore(req: IncomingMessage, name: string, reference: string, index: KnownIndex): void {
    if (req.method !== 'GET') return;
    metrics.conversions.inc({ direction: 'out' });
    log.info(
      { reqId: contextOf(req)?.id, repo: name, ref: reference, indexDigest: index.indexDigest, manifestDigest: index.manifestDigest, descriptors: index.descriptors, direction: 'out' },
      'cache index restored',
    );
  }

  async function getByTag(req: IncomingMessage, res: ServerResponse, name: string, tag: string, accepted: string[]): Promise<void> {
    const method = req.method === 'HEAD' ? 'HEAD' : 'GET';
    const path = `/v2/${name}/manifests/${tag}`;
    // distribution answers 404 for an OCI manifest that Accept does not name: always name it.
    const up = await call(req, res, { method, path, headers: forwardedRequestHeaders(req.headers, { accept: withType(req.headers.accept, OCI_MANIFEST) }) });
    if (up.status !== 200 || mediaTypeOf(up.headers) !== OCI_MANIFEST) return sendUpstream(req, res, up);
    let manifestDigest = header(up.headers, 'docker-content-digest') ?? (method === 'GET' ? sha256(up.body) : undefined);
    let body: Buffer | undefined = method === 'GET' ? up.body : undefined;
    if (manifestDigest === undefined) {
      const full = await call(req, res, { method: 'GET', path, headers: clientHeaders(req, { accept: OCI_MANIFEST }) });
      if (full.status !== 200) return sendUpstream(req, res, full);
      body = full.body;
      manifestDigest = sha256(full.body);
    }
    const digest = manifestDigest;
    const known = await map.loadManifest(digest, async () => {
      if (body !== undefined) return describe(body);
      const full = await call(req, res, { method: 'GET', path: `/v2/${name}/manifests/${digest}`, headers: clientHeaders(req, { accept: OCI_MANIFEST }) });
      if (full.status !== 200) throw new UpstreamAnswer(full);
      return describe(full.body);
    });
    if (known.kind === 'plain' || !accepts(accepted, known.ref.indexMediaType)) {
      if (accepts(accepted, OCI_MANIFEST)) return sendUpstream(req, res, up);
      // The client did not ask for OCI manifests: give it what the upstream gives it directly.
      return sendUpstream(req, res, await call(req, res, { method, path, headers: forwardedRequestHeaders(req.headers) }));
    }
    if (method === 'HEAD') {
      return sendIndex(req, res, { digest: known.ref.indexDigest, mediaType: known.ref.indexMediaType, size: known.ref.indexSize });
    }
    const index = await map.loadIndex(known.ref.indexDigest, () => loadIndex(req, res, name, digest, known));
    logRestore(req, name, tag, index);
    sendIndex(req, res, { digest: index.indexDigest, mediaType: index.mediaType, size: index.bytes.length, bytes: index.bytes });
  }

  async function getByDigest(req: IncomingMessage, res: ServerResponse, name: string, digest: string): Promise<void> {
    const method = req.method === 'HEAD' ? 'HEAD' : 'GET';
    const known = map.index(digest);
    if (known) {
      // The bytes are known; the upstream still decides whether this client may have them
      // and whether the cache still exists: one request, as a direct one would cost.
      const check = await call(req, res, {
        method,
        path: `/v2/${name}/manifests/${known.manifestDigest}`,
        headers: clientHeaders(req, { accept: OCI_MANIFEST }),
      });
      if (check.status !== 200) return sendUpstream(req, res, check);
      logRestore(req, name, digest, known);
      return sendIndex(req, res, { digest, mediaType: known.mediaType, size: known.bytes.length, bytes: known.bytes });
    }
    const pointer = map.manifestOf(digest);
    if (pointer) {
      const check = await call(req, res, {
        method: 'HEAD',
        path: `/v2/${name}/manifests/${pointer.manifestDigest}`,
        headers: clientHeaders(req, { accept: OCI_MANIFEST }),
      });
      if (check.status !== 200) return sendUpstream(req, res, check);
      if (method === 'HEAD') return sendIndex(req, res, { digest, mediaType: pointer.ref.indexMediaType, size: pointer.ref.indexSize });
      const index = await map.loadIndex(digest, () => loadIndex(req, res, name, pointer.manifestDigest, { kind: 'converted', ref: pointer.ref }));
      logRestore(req, name, digest, index);
      return sendIndex(req, res, { digest, mediaType: index.mediaType, size: index.bytes.length, bytes: index.bytes });
    }
    const up = await call(req, res, { method, path: `/v2/${name}/manifests/${digest}`, headers: forwardedRequestHeaders(req.headers) });
    // 2xx is the answer; so are auth refusals. A 404 (or distribution's 500 for a blob
    // digest) may be an index regshim stored as a blob.
    if (up.status !== 404 && up.status < 500) return sendUpstream(req, res, up);
    const found = await findByIndexDigest(req, res, name, digest);
    if (!found) return sendUpstream(req, res, up);
    logRestore(req, name, digest, found);
    sendIndex(req, res, { digest, mediaType: found.mediaType, size: found.bytes.length, bytes: found.bytes });
  }

  async function get(req: Request, res: Response): Promise<void> {
    const route = manifestRoute(req);
    const accepted = parseAccept(req.headers.accept);
    // A client that cannot take an index cannot be given one: nothing for regshim to do.
    if (!accepted.includes(OCI_INDEX) && !accepted.includes(DOCKER_LIST) && !accepted.includes('*/*')) {
      return deps.passthrough(req, res);
    }
    if (isDigest(route.reference)) return getByDigest(req, res, route.name, route.reference);
    return getByTag(req, res, route.name, route.reference, accepted);
  }

  /** Uploads the exact index bytes as a blob of the repository, unless it is there already. */
  async function storeIndexBlob(req: IncomingMessage, res: ServerResponse, name: string, digest: string, bytes: Buffer): Promise<UpstreamResponse | undefined> {
    const head = await call(req, res, { method: 'HEAD', path: `/v2/${name}/blobs/${digest}`, headers: clientHeaders(req) });
    if (head.status === 200) return undefined;
    // A 401 here would challenge for pull only; the POST's challenge asks for push, as the
    // client's own manifest PUT would have.
    if (head.status !== 404 && head.status !== 401) return head;
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

  async function putCache(req: Request, res: Response, name: string, reference: string, body: Buffer, index: CacheIndex): Promise<void> {
    const converted = toImageManifest(index, body, config.indexMediaType);
    // The conversion already hashed the body (sha256); a PUT by digest may name another algorithm.
    const indexDigest = isDigest(reference) ? digestAs(reference, body) : converted.indexBlob.digest;
    if (isDigest(reference) && indexDigest !== reference) {
      throw new OciError('DIGEST_INVALID', 'the manifest body does not match the digest in the URL', { reference, actual: indexDigest });
    }
    const reqId = contextOf(req)?.id;
    const logFields = { reqId, repo: name, ref: reference, indexDigest, manifestDigest: converted.digest, descriptors: index.manifests.length };
    for (const problem of importLimitProblems(index, body, converted)) {
      metrics.importLimit.inc();
      log.warn({ ...logFields, problem }, 'cache stored, but BuildKit will not import it: every build that reads it will miss');
    }
    const blobFailure = await storeIndexBlob(req, res, name, converted.indexBlob.digest, body);
    if (blobFailure) {
      log.warn({ ...logFields, status: blobFailure.status }, 'upstream refused the index blob; nothing was converted');
      return sendUpstream(req, res, blobFailure);
    }
    const target = isDigest(reference) ? converted.digest : reference;
    const up = await call(req, res, {
      method: 'PUT',
      path: `/v2/${name}/manifests/${target}`,
      headers: clientHeaders(req, { 'content-type': OCI_MANIFEST }),
      body: converted.bytes,
    });
    if (up.status !== 200 && up.status !== 201 && up.status !== 204) {
      log.warn({ ...logFields, status: up.status, limits: registryLimitProblems(converted) }, 'upstream refused the converted manifest');
      return sendUpstream(req, res, up);
    }
    const stored = header(up.headers, 'docker-content-digest');
    if (stored !== undefined && stored !== converted.digest) {
      log.warn({ ...logFields, upstreamDigest: stored }, 'upstream stored the manifest under another digest');
    }
    map.remember({ kind: 'index', indexDigest, manifestDigest: converted.digest, mediaType: index.mediaType, bytes: body, descriptors: index.manifests.length });
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

  async function put(req: Request, res: Response): Promise<void> {
    const { name, reference } = manifestRoute(req);
    const body: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const detection = classifyManifest(body, req.headers['content-type']);
    if (detection.kind === 'invalid') {
      throw new OciError('MANIFEST_INVALID', 'the BuildKit cache index is malformed', detection.detail);
    }
    if (detection.kind === 'cache') return putCache(req, res, name, reference, body, detection.index);
    const up = await call(req, res, {
      method: 'PUT',
      path: req.url ?? `/v2/${name}/manifests/${reference}`,
      headers: forwardedRequestHeaders(req.headers),
      body,
    });
    sendUpstream(req, res, up);
  }

  async function remove(req: Request, res: Response): Promise<void> {
    const { name, reference } = manifestRoute(req);
    if (!isDigest(reference)) return deps.passthrough(req, res);
    const known = map.index(reference) ?? (await findByIndexDigest(req, res, name, reference));
    if (!known) return deps.passthrough(req, res);
    const up = await call(req, res, { method: 'DELETE', path: `/v2/${name}/manifests/${known.manifestDigest}`, headers: clientHeaders(req) });
    if (up.status < 300) {
      map.forget(known.indexDigest, known.manifestDigest);
      // The index blob is no longer referenced; remove it where the registry allows it.
      const blob = await call(req, res, { method: 'DELETE', path: `/v2/${name}/blobs/${known.indexDigest}`, headers: clientHeaders(req) });
      log.info({ repo: name, indexDigest: known.indexDigest, manifestDigest: known.manifestDigest, blobStatus: blob.status }, 'cache deleted');
    }
    sendUpstream(req, res, up);
  }

  return { get, put, remove, sendUpstream };
}

function manifestRoute(req: IncomingMessage): { name: string; reference: string } {
  const route = contextOf(req)?.route;
  if (route?.kind !== 'manifest') throw new OciError('UNKNOWN', 'manifest handler reached without a manifest route');
  return route;
}

function countDescriptors(bytes: Buffer): number {
  const detection = classifyManifest(bytes, undefined);
  return detection.kind === 'cache' ? detection.index.manifests.length : 0;
}

function mediaTypeOf(headers: Headers): string | undefined {
  return header(headers, 'content-type')?.split(';')[0]?.trim().toLowerCase();
}
