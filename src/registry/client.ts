// regshim's upstream client for the subcommands a person runs (inspect, doctor): the
// server's own Upstream, with the server's own credential handling (docker config,
// credential helpers, username and password file), pointed at the registry in question.
import type { Config } from '../config.js';
import { createLogger } from '../observability/log.js';
import { createMetrics } from '../observability/metrics.js';
import { type UpstreamAuth, upstreamAuthFor } from './auth/upstream-auth.js';
import { Upstream } from './upstream.js';

export interface RegistryConnection {
  upstream: Upstream;
  /** undefined when no credentials are configured: requests go without. */
  auth: UpstreamAuth | undefined;
  close(): Promise<void>;
}

export function connectRegistry(config: Config): RegistryConnection {
  // The subcommands report failures themselves; the server's debug lines are not for them.
  const auth = upstreamAuthFor(config, createLogger('silent'), createMetrics());
  const upstream = new Upstream(config, auth);
  return {
    upstream,
    auth,
    async close() {
      await upstream.close();
      await auth?.close();
    },
  };
}
