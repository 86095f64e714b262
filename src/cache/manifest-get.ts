// GET and HEAD of /v2/<name>/manifests/<ref>: a converted cache comes back as the exact
// index bytes the client pushed, with their digest. Everything else is the upstream's answer.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, Response } from 'express';
import { contextOf } from '../observability/access-log.js';
import { accepts, parseAccept, withType } from '../registry/accept.js';
import { OciError } from '../registry/errors.js';
import { DOCKER_LIST, OCI_INDEX, OCI_MANIFEST } from '../registry/media-types.js';
import { isDigest } from '../registry/routes.js';
import { type Headers, forwardedRequestHeaders, header } from '../registry/upstream.js';
import { sha256 } from './convert.js';
import type { CacheContext } from './context.js';
import { type IndexPointer, type IndexSource, type KnownIndex, isMade } from './digest-map.js';
import { UpstreamAnswer } from './exchange.js';

export function createGetHandler(ctx: CacheContext) {
  const { config, map, log, metrics, lookup } = ctx;
  const { call, clientHeaders, sendUpstream, sendIndex } = ctx.exchange;

  function logRestore(req: IncomingMessage, name: string, reference: string, index: KnownIndex): void {
    if (req.method !== 'GET') return;
    metrics.conversions.inc({ direction: 'out' });
    log.info(
      { reqId: contextOf(req)?.id, repo: name, ref: reference, indexDigest: index.indexDigest, manifestDigest: index.manifestDigest, descriptors: index.descriptors, direction: 'out' },
      'cache index restored',
    );
  }

  async function byTag(req: IncomingMessage, res: ServerResponse, name: string, tag: string, accepted: string[]): Promise<void> {
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
    const known = await map.loadManifest(digest, async () => lookup.describe(body ?? (await manifestBytes(req, res, name, digest)), digest));
    if (known.kind === 'plain' || !takesIndex(accepted, known.source, known.ref.indexMediaType)) {
      if (accepts(accepted, OCI_MANIFEST)) return sendUpstream(req, res, up);
      // The client did not ask for OCI manifests: give it what the upstream gives it directly.
      return sendUpstream(req, res, await call(req, res, { method, path, headers: forwardedRequestHeaders(req.headers) }));
    }
    const pointer: IndexPointer = { source: known.source, manifestDigest: digest, ref: known.ref, rebuildable: known.rebuildable };
    // BuildKit's image manifest, pushed as it is or kept in the image form: an importer that
    // names the OCI index gets the index made from it (forms/made-index.ts).
    const madeFromKept = known.source === 'stored' && known.ref.indexMediaType === OCI_MANIFEST && config.imageManifestAsIndex && accepted.includes(OCI_INDEX);
    if (isMade(known.source) || madeFromKept) {
      const index = madeFromKept
        ? lookup.madeFromKept(await pushedBytes(req, res, name, pointer, body))
        : (map.index(known.ref.indexDigest) ?? (await map.fetchIndex(known.ref.indexDigest, () => lookup.loadIndex(req, res, name, pointer, { rebuild: true, manifestBytes: body }))));
      if (index === undefined) throw new OciError('MANIFEST_UNKNOWN', 'the cache kept under this tag is not an image manifest BuildKit wrote', { manifest: digest });
      if (madeFromKept) map.remember(index);
      await lookup.storeMadeIndex(req, res, name, index);
      logRestore(req, name, tag, index);
      return sendIndex(req, res, { digest: index.indexDigest, mediaType: index.mediaType, size: index.bytes.length, bytes: index.bytes }, 'made');
    }
    if (method === 'HEAD') {
      // An index that cannot be rebuilt exists only as long as its blob does.
      if (!known.rebuildable) await lookup.ensureBlob(req, res, name, pointer);
      return sendIndex(req, res, { digest: known.ref.indexDigest, mediaType: known.ref.indexMediaType, size: known.ref.indexSize });
    }
    const index = await pushedBytes(req, res, name, pointer, body);
    logRestore(req, name, tag, index);
    sendIndex(req, res, { digest: index.indexDigest, mediaType: index.mediaType, size: index.bytes.length, bytes: index.bytes });
  }

  /** The bytes a client pushed, kept by the manifest `pointer` names: from memory while the blob is there, else loaded. */
  async function pushedBytes(req: IncomingMessage, res: ServerResponse, name: string, pointer: IndexPointer, manifestBytes: Buffer | undefined): Promise<KnownIndex> {
    const cached = map.index(pointer.ref.indexDigest);
    if (cached && !pointer.rebuildable) await lookup.ensureBlob(req, res, name, pointer);
    return cached ?? (await map.fetchIndex(pointer.ref.indexDigest, () => lookup.loadIndex(req, res, name, pointer, { rebuild: true, manifestBytes })));
  }

  async function byDigest(req: IncomingMessage, res: ServerResponse, name: string, digest: string, accepted: string[]): Promise<void> {
    const method = req.method === 'HEAD' ? 'HEAD' : 'GET';
    const pointer = map.manifestOf(digest);
    // A client is given only a type it takes, as by tag: one that names the OCI manifest
    // alone gets BuildKit's image manifest kept in the image form, never an index.
    if (pointer && accepts(accepted, pointer.ref.indexMediaType)) {
      // The upstream decides whether this client may read the repository and whether the
      // manifest still exists; the blob, whether the index does (lookup.ts): both at once.
      const cached = map.index(digest);
      // A made index needs its manifest alone (lookup.ts).
      const [check, loaded] = await Promise.allSettled([
        call(req, res, { method: 'HEAD', path: `/v2/${name}/manifests/${pointer.manifestDigest}`, headers: clientHeaders(req, { accept: OCI_MANIFEST }) }),
        method === 'GET' && !cached
          ? map.fetchIndex(digest, () => lookup.loadIndex(req, res, name, pointer, { rebuild: false }))
          : isMade(pointer.source) ? Promise.resolve(cached) : lookup.ensureBlob(req, res, name, pointer).then(() => cached),
      ]);
      if (check.status === 'rejected') throw check.reason;
      if (check.value.status !== 200 && check.value.status !== 404) return sendUpstream(req, res, check.value);
      if (check.value.status === 200 && loaded.status === 'fulfilled') {
        const index = loaded.value;
        const action = isMade(pointer.source) ? 'made' : 'restored';
        if (method === 'HEAD' || index === undefined) return sendIndex(req, res, { digest, mediaType: pointer.ref.indexMediaType, size: pointer.ref.indexSize }, action);
        logRestore(req, name, digest, index);
        return sendIndex(req, res, { digest, mediaType: index.mediaType, size: index.bytes.length, bytes: index.bytes }, action);
      }
      if (loaded.status === 'rejected' && !isGone(loaded.reason)) throw loaded.reason;
      // The manifest or the index blob is gone: answer exactly as a replica that never knew
      // this cache would, from the registry (lookup.ts).
      map.forget(digest, pointer.manifestDigest);
    }
    const up = await call(req, res, { method, path: `/v2/${name}/manifests/${digest}`, headers: forwardedRequestHeaders(req.headers) });
    // 2xx is the answer; so are auth refusals. A 404 (or distribution's 500 for a blob
    // digest) may be an index regshim stored as a blob.
    if (up.status !== 404 && up.status < 500) return sendUpstream(req, res, up);
    const found = await lookup.findByIndexDigest(req, res, name, digest);
    if (!found || !accepts(accepted, found.mediaType)) return sendUpstream(req, res, up);
    logRestore(req, name, digest, found);
    sendIndex(req, res, { digest, mediaType: found.mediaType, size: found.bytes.length, bytes: found.bytes }, isMade(found.source) ? 'made' : 'restored');
  }

  async function manifestBytes(req: IncomingMessage, res: ServerResponse, name: string, digest: string): Promise<Buffer> {
    const full = await call(req, res, { method: 'GET', path: `/v2/${name}/manifests/${digest}`, headers: clientHeaders(req, { accept: OCI_MANIFEST }) });
    if (full.status !== 200) throw new UpstreamAnswer(full);
    return full.body;
  }

  return async function get(req: Request, res: Response): Promise<void> {
    const { name, reference } = ctx.route(req);
    const accepted = parseAccept(req.headers.accept);
    // A client that takes neither an index nor an OCI manifest cannot be given a cache. One
    // that takes only the OCI manifest may have pushed BuildKit's image manifest, which the
    // image form keeps as a blob: it gets those bytes back, not the stored manifest.
    if (!accepted.includes(OCI_INDEX) && !accepted.includes(DOCKER_LIST) && !accepted.includes(OCI_MANIFEST) && !accepted.includes('*/*')) {
      return ctx.passthrough(req, res);
    }
    if (isDigest(reference)) return byDigest(req, res, name, reference, accepted);
    return byTag(req, res, name, reference, accepted);
  };
}

function isGone(err: unknown): boolean {
  return (err instanceof OciError && err.code === 'MANIFEST_UNKNOWN') || (err instanceof UpstreamAnswer && err.response.status === 404);
}

/**
 * Does the client take the index for this manifest? A stored index goes to any client that
 * takes its type. A made one only to a client that names the OCI index: containerd's pusher
 * asks with its own type and the wildcard before a PUT (remotes/docker/pusher.go), and must get the
 * manifest's digest back, or a builder re-exporting an unchanged cache writes it again.
 */
function takesIndex(accepted: string[], source: IndexSource, indexMediaType: string): boolean {
  return isMade(source) ? accepted.includes(OCI_INDEX) : accepts(accepted, indexMediaType);
}

function mediaTypeOf(headers: Headers): string | undefined {
  return header(headers, 'content-type')?.split(';')[0]?.trim().toLowerCase();
}
