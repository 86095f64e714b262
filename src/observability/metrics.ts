import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics of one server; each server has its own registry, so tests don't share. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'regshim_' });
  return {
    registry,
    requests: new Counter({
      name: 'regshim_requests_total',
      help: 'Requests answered, by route kind, method and status',
      labelNames: ['route', 'method', 'status'] as const,
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'regshim_request_duration_seconds',
      help: 'Time to answer a request, by route kind',
      labelNames: ['route'] as const,
      buckets: [0.005, 0.02, 0.1, 0.5, 2, 10, 60, 300],
      registers: [registry],
    }),
    conversions: new Counter({
      name: 'regshim_conversions_total',
      help: 'Cache indexes converted to image manifests (in) and restored from them (out)',
      labelNames: ['direction'] as const,
      registers: [registry],
    }),
    importLimit: new Counter({
      name: 'regshim_cache_over_import_limit_total',
      help: "Caches stored that BuildKit will refuse to import (over its 1 MiB limit)",
      registers: [registry],
    }),
    madeIndexBlobs: new Counter({
      name: 'regshim_made_index_blobs_total',
      help: "Indexes made from BuildKit image-manifest caches, stored as blobs so any replica finds them by digest (stored), or that could not be (refused: no push credentials)",
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    formSwitches: new Counter({
      name: 'regshim_cache_form_switches_total',
      help: "Times --cache-form auto switched to the image form after the upstream refused BuildKit's form for its media types",
      registers: [registry],
    }),
    digestMap: new Counter({
      name: 'regshim_digest_map_lookups_total',
      help: 'Digest map lookups, by result',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    upstreamErrors: new Counter({
      name: 'regshim_upstream_errors_total',
      help: 'Upstream connections that failed or timed out',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    tokenFetches: new Counter({
      name: 'regshim_upstream_token_fetches_total',
      help: 'Bearer tokens asked of the upstream realm with regshim\'s credentials, by result (ok, rejected, failed)',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    credentialHelperRuns: new Counter({
      name: 'regshim_credential_helper_runs_total',
      help: 'Runs of the docker-credential helper for the upstream, by result (ok, failed)',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    upstreamAuthRejections: new Counter({
      name: 'regshim_upstream_auth_rejections_total',
      help: 'Upstream requests refused (401) although they carried regshim\'s credentials',
      registers: [registry],
    }),
    inboundAuthFailures: new Counter({
      name: 'regshim_inbound_auth_failures_total',
      help: 'Client requests refused before reaching the upstream, by reason (unauthorized, denied)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
