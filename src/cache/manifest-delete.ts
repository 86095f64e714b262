// DELETE of /v2/<name>/manifests/<index digest>: the manifest that stands for the index, then
// the index blob. Deletes by any other reference pass through.
import type { Request, Response } from 'express';
import { isDigest } from '../registry/routes.js';
import type { CacheContext } from './context.js';

export function createDeleteHandler(ctx: CacheContext) {
  const { map, log, lookup } = ctx;
  const { call, clientHeaders, sendUpstream } = ctx.exchange;

  return async function remove(req: Request, res: Response): Promise<void> {
    const { name, reference } = ctx.route(req);
    if (!isDigest(reference)) return ctx.passthrough(req, res);
    const known = map.index(reference) ?? (await lookup.findByIndexDigest(req, res, name, reference));
    if (!known) return ctx.passthrough(req, res);
    const up = await call(req, res, { method: 'DELETE', path: `/v2/${name}/manifests/${known.manifestDigest}`, headers: clientHeaders(req) });
    if (up.status < 300) {
      map.forget(known.indexDigest, known.manifestDigest);
      // The index blob is no longer referenced; remove it where the registry allows it.
      const blob = await call(req, res, { method: 'DELETE', path: `/v2/${name}/blobs/${known.indexDigest}`, headers: clientHeaders(req) });
      log.info({ repo: name, indexDigest: known.indexDigest, manifestDigest: known.manifestDigest, blobStatus: blob.status }, 'cache deleted');
    }
    sendUpstream(req, res, up);
  };
}
