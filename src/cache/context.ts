// What the manifest handlers share: settings, the digest map, the upstream exchange, the
// lookups, and where the rest goes (the pass-through).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config.js';
import { contextOf } from '../observability/access-log.js';
import type { Logger } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import { OciError } from '../registry/errors.js';
import type { Upstream } from '../registry/upstream.js';
import type { DigestMap } from './digest-map.js';
import { type Exchange, createExchange } from './exchange.js';
import { type FormChoice, createFormChoice } from './forms/form-choice.js';
import { type CacheLookup, createLookup } from './lookup.js';

export interface ManifestDeps {
  config: Config;
  upstream: Upstream;
  map: DigestMap;
  log: Logger;
  metrics: Metrics;
  passthrough: (req: IncomingMessage, res: ServerResponse) => void;
}

export interface CacheContext extends ManifestDeps {
  exchange: Exchange;
  lookup: CacheLookup;
  /** The form caches are written in, for this upstream. */
  forms: FormChoice;
  /** The manifest route the request was classified as (server.ts). */
  route(req: IncomingMessage): { name: string; reference: string };
}

export function createCacheContext(deps: ManifestDeps): CacheContext {
  const exchange = createExchange(deps.config, deps.upstream);
  const forms = createFormChoice(deps.config.cacheForm, deps.config.upstream.origin, deps.log, deps.metrics);
  return { ...deps, exchange, forms, lookup: createLookup(deps.config, exchange, deps.map, deps.log, deps.metrics, forms), route: manifestRoute };
}

function manifestRoute(req: IncomingMessage): { name: string; reference: string } {
  const route = contextOf(req)?.route;
  if (route?.kind !== 'manifest') throw new OciError('UNKNOWN', 'manifest handler reached without a manifest route');
  return route;
}
