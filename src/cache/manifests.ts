// The manifest handlers, one unit per method: GET/HEAD restore a cache index byte for byte
// (manifest-get.ts), PUT converts one (manifest-put.ts), DELETE removes both of its parts
// (manifest-delete.ts). Everything that is not a cache goes to the upstream untouched.
import { type ManifestDeps, createCacheContext } from './context.js';
import { createDeleteHandler } from './manifest-delete.js';
import { createGetHandler } from './manifest-get.js';
import { createPutHandler } from './manifest-put.js';

export type { ManifestDeps };

export function createManifestHandlers(deps: ManifestDeps) {
  const ctx = createCacheContext(deps);
  return {
    get: createGetHandler(ctx),
    put: createPutHandler(ctx),
    remove: createDeleteHandler(ctx),
    sendUpstream: ctx.exchange.sendUpstream,
  };
}
