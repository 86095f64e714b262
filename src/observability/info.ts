// GET /info: regshim's version and the settings it runs with, for `regshim doctor` and for
// people. Nothing that could be a secret: where credentials come from is a yes or no.
import type { Config } from '../config.js';

export function infoOf(config: Config, version: string) {
  return {
    version,
    upstream: config.upstream.origin,
    settings: {
      indexMediaType: config.indexMediaType,
      maxManifestBytes: config.maxManifestBytes,
      cacheMaxBytes: config.cacheMaxBytes,
      upstreamTimeoutMs: config.upstreamTimeoutMs,
      upstreamConnections: config.upstreamConnections,
      workers: config.workers,
      upstreamCredentials: config.upstreamCredentials !== undefined,
      inboundAuth: config.access.htpasswd !== undefined,
      allowRepositories: config.access.allowRepositories,
      tls: config.tlsCert !== undefined,
    },
  };
}
