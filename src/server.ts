// Where a request goes. Blob and upload traffic (the bytes) goes from a bare node:http
// handler straight to the streaming proxy: express in front of it halves throughput.
// Manifests, health and metrics go through express, which they need.
import type http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Registry } from 'prom-client';
import { formValuesRefusal } from './access/form-body.js';
import { createGate } from './access/gate.js';
import { DigestMap } from './cache/digest-map.js';
import { UpstreamAnswer } from './cache/exchange.js';
import { createManifestHandlers } from './cache/manifests.js';
import { type Config, ConfigError } from './config.js';
import { openListenRefusal } from './config-auth.js';
import { createManifestAdmission } from './intake/admission.js';
import { createFrontDoor, isFramingSupported } from './intake/front-door.js';
import { memoryBudget } from './memory-budget.js';
import { isRegistryApi, parseTarget } from './intake/target.js';
import { markAction, trackRequest } from './observability/access-log.js';
import { type Logger, createLogger, requestLogger } from './observability/log.js';
import { infoOf } from './observability/info.js';
import { createMetrics } from './observability/metrics.js';
import { createPassthrough, refuseBodyOnDelete } from './passthrough/proxy.js';
import { upstreamAuthFor } from './registry/auth/upstream-auth.js';
import { OciError, sendOciError } from './registry/errors.js';
import { type Route, parseRoute } from './registry/routes.js';
import { Upstream } from './registry/upstream.js';

export interface RegShim {
  readonly server: http.Server;
  readonly log: Logger;
  /** Starts listening; resolves with the URL clients use. Rejects with a ConfigError when the bound address breaks the open-listen rule. */
  listen(): Promise<URL>;
  /** Reads the --auth-htpasswd file again now (SIGHUP). */
  reload(): Promise<void>;
  /** Stops accepting, ends open connections, releases upstream sockets. */
  close(): Promise<void>;
}

export interface ServerOptions {
  /** Where logs go (tests capture them); stdout by default. */
  logDestination?: { write(line: string): void };
  /** How long close() lets requests in flight (a layer upload, say) finish before cutting them. */
  shutdownGraceMs?: number;
  /** The version /info reports (the CLI's, from package.json). */
  version?: string;
  /** In a worker process: /metrics answers for every worker (src/workers.ts). */
  clusterMetrics?: { attach(registry: Registry): void; collect(): Promise<string> };
}

const OWN_PATHS = new Set(['/healthz', '/readyz', '/metrics', '/info']);
const OTHER: Route = { kind: 'other' };

export function createServer(config: Config, options: ServerOptions = {}): RegShim {
  const log = createLogger(config.logLevel, options.logDestination);
  const requestLog = requestLogger(log);
  const metrics = createMetrics();
  metrics.memoryBudget.set(memoryBudget(config).total);
  options.clusterMetrics?.attach(metrics.registry);
  const auth = upstreamAuthFor(config, log, metrics);
  const gate = createGate(config.access, metrics, log);
  const upstream = new Upstream(config, auth);
  const passthrough = createPassthrough(config, log, metrics, auth);
  const map = new DigestMap(config.cacheMaxBytes, {
    hit: (kind, digest) => {
      metrics.digestMap.inc({ result: 'hit' });
      log.debug({ kind, digest }, 'digest map hit');
    },
    miss: (kind, digest) => {
      metrics.digestMap.inc({ result: 'miss' });
      log.debug({ kind, digest }, 'digest map miss');
    },
  });
  const manifests = createManifestHandlers({ config, upstream, map, log, metrics, passthrough });

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    if (auth) {
      const problem = await auth.check().then(() => undefined, (err: Error) => err.message);
      if (problem === undefined) res.json({ status: 'ready' });
      else sendOciError(res, new OciError('UNAVAILABLE', `upstream credentials from ${auth.describe()} do not work: ${problem}`));
      return;
    }
    const ready = await upstream
      .request({ method: 'GET', path: '/v2/', headers: {}, maxBodyBytes: 1 << 16 })
      .then((r) => r.status === 200 || r.status === 401, () => false);
    if (ready) res.json({ status: 'ready' });
    else sendOciError(res, new OciError('UNAVAILABLE', `the upstream registry ${config.upstream.origin} is not answering /v2/`));
  });
  const info = infoOf(config, options.version ?? 'unknown');
  app.get('/info', (_req, res) => {
    res.json(info);
  });
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await (options.clusterMetrics?.collect() ?? metrics.registry.metrics()));
  });
  const manifestPath = /^\/v2\/.+\/manifests\/[^/]+$/;
  app.get(manifestPath, manifests.get); // express answers HEAD with the GET route
  app.put(manifestPath, express.raw({ limit: config.maxManifestBytes, type: () => true }), manifests.put);
  app.delete(manifestPath, manifests.remove);
  app.use((req: Request, res: Response) => passthrough(req, res));
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof UpstreamAnswer) return manifests.sendUpstream(req, res, err.response);
    const oci = toOciError(err, config.maxManifestBytes);
    if (oci.status >= 500 && oci.code === 'UNKNOWN') log.error({ err, method: req.method, path: req.path }, 'request failed');
    refuse(req, res, oci);
  });

  const admission = createManifestAdmission(config);
  const { server, proceed, refuse, fail } = createFrontDoor(config, log, route);

  function route(req: IncomingMessage, res: ServerResponse): void {
    const target = parseTarget(req.url ?? '/');
    const pathname = target.ok ? target.pathname : '';
    const route = target.ok && isRegistryApi(pathname) ? parseRoute(pathname) : OTHER;
    trackRequest(req, res, route, requestLog, metrics, OWN_PATHS.has(pathname) ? 'debug' : 'info');
    if (!target.ok) return refuse(req, res, new OciError(target.status === 404 ? 'NOT_FOUND' : 'REQUEST_INVALID', target.reason));
    req.url = target.path; // the origin form, also when the client sent the absolute form
    if (!isFramingSupported(req)) {
      return refuse(req, res, new OciError('REQUEST_INVALID', 'Transfer-Encoding must be chunked alone (RFC 9112 section 6.3)'));
    }
    if (OWN_PATHS.has(pathname)) {
      markAction(req, 'answered');
      return proceed(req, res, app);
    }
    if (!isRegistryApi(pathname)) return refuse(req, res, new OciError('NOT_FOUND', 'regshim serves the registry API under /v2/, and /healthz, /readyz, /metrics, /info'));
    if (refuseBodyOnDelete(req, res)) return;
    const q = target.path.indexOf('?');
    const query = q === -1 ? '' : target.path.slice(q + 1);
    const formRefusal = formValuesRefusal(req.headers, query);
    if (formRefusal !== undefined) {
      metrics.inboundAuthFailures.inc({ reason: 'form-body' });
      return refuse(req, res, new OciError('UNSUPPORTED', formRefusal));
    }
    if (!gate) return dispatch(req, res, route);
    gate(req, res, route, new URLSearchParams(query)).then(
      (allowed) => {
        if (!allowed) return;
        // Credentials for regshim are not the upstream's business.
        if (config.access.htpasswd) delete req.headers.authorization;
        dispatch(req, res, route);
      },
      (err: unknown) => fail(req, res, err),
    );
  }

  /** Past the access check: the stream for everything but manifests; manifest PUTs once admitted. */
  function dispatch(req: IncomingMessage, res: ServerResponse, route: Route): void {
    if (route.kind !== 'manifest') return proceed(req, res, passthrough);
    if (req.method !== 'PUT') return proceed(req, res, app);
    admission.admit(req, res)
      .then((admitted) => admitted && proceed(req, res, app))
      .catch((err: unknown) => fail(req, res, err));
  }

  let closing: Promise<void> | undefined;
  return {
    server,
    log,
    listen: () =>
      new Promise<URL>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.listenPort, config.listenHost, () => {
          server.off('error', reject);
          const address = server.address() as AddressInfo;
          // Judged again on the address bound: a name (localhost) may resolve anywhere.
          const refusal = openListenRefusal(config, config.listenHost, [address.address]);
          if (refusal !== undefined) {
            server.close();
            reject(new ConfigError(refusal));
            return;
          }
          const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
          const url = new URL(`${config.tlsCert ? 'https' : 'http'}://${host}:${address.port}`);
          log.info({ url: url.origin, upstream: config.upstream.origin }, 'listening');
          resolve(url);
          if (auth) {
            // Learn the upstream's challenge now, and say at once when credentials don't work.
            auth.check().then(
              () => log.info({ credentials: auth.describe() }, 'upstream credentials accepted'),
              (err: Error) => log.error({ credentials: auth.describe(), problem: err.message }, 'upstream credentials do not work; /readyz fails until they do'),
            );
          }
        });
      }),
    reload: async () => gate?.reload(),
    close: () => (closing ??= stop()),
  };

  // Stop accepting, let requests in flight finish (a rolling deploy must not fail a build's
  // push), close idle keep-alive connections at once, and cut what is left after the grace.
  async function stop(): Promise<void> {
    const grace = setTimeout(() => server.closeAllConnections(), options.shutdownGraceMs ?? 10_000);
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
    clearTimeout(grace);
    passthrough.close();
    await upstream.close();
    await auth?.close();
    await gate?.close();
  }
}

function toOciError(err: unknown, maxManifestBytes: number): OciError {
  if (err instanceof OciError) return err;
  const e = err as { type?: string; status?: number; message?: string };
  if (e.type === 'entity.too.large') {
    return new OciError('MANIFEST_TOO_LARGE', `manifest bodies are limited to ${maxManifestBytes} bytes (--max-manifest-bytes)`, { limit: maxManifestBytes });
  }
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
    return new OciError('MANIFEST_INVALID', e.message ?? 'the request could not be read');
  }
  return new OciError('UNKNOWN', 'regshim failed to answer this request');
}
