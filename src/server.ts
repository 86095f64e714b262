// Where a request goes. Blob and upload traffic (the bytes) goes from a bare node:http
// handler straight to the streaming proxy: express in front of it halves throughput.
// Manifests, health and metrics go through express, which they need.
import http, { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Registry } from 'prom-client';
import { createGate } from './access/gate.js';
import { DigestMap } from './cache/digest-map.js';
import { UpstreamAnswer } from './cache/exchange.js';
import { createManifestHandlers } from './cache/manifests.js';
import type { Config } from './config.js';
import { createManifestAdmission } from './intake/admission.js';
import { isRegistryApi, parseTarget } from './intake/target.js';
import { trackRequest } from './observability/access-log.js';
import { type Logger, createLogger } from './observability/log.js';
import { createMetrics } from './observability/metrics.js';
import { createPassthrough, refuseBodyOnDelete } from './passthrough/proxy.js';
import { UpstreamAuth } from './registry/auth/upstream-auth.js';
import { OciError, sendOciError } from './registry/errors.js';
import { type Route, parseRoute } from './registry/routes.js';
import { Upstream } from './registry/upstream.js';

export interface RegShim {
  readonly server: http.Server;
  readonly log: Logger;
  /** Starts listening; resolves with the URL clients use. */
  listen(): Promise<URL>;
  /** Stops accepting, ends open connections, releases upstream sockets. */
  close(): Promise<void>;
}

export interface ServerOptions {
  /** Where logs go (tests capture them); stdout by default. */
  logDestination?: { write(line: string): void };
  /** How long close() lets requests in flight (a layer upload, say) finish before cutting them. */
  shutdownGraceMs?: number;
  /** In a worker process: /metrics answers for every worker (src/workers.ts). */
  clusterMetrics?: { attach(registry: Registry): void; collect(): Promise<string> };
}

const OWN_PATHS = new Set(['/healthz', '/readyz', '/metrics']);
const OTHER: Route = { kind: 'other' };

export function createServer(config: Config, options: ServerOptions = {}): RegShim {
  const log = createLogger(config.logLevel, options.logDestination);
  const metrics = createMetrics();
  options.clusterMetrics?.attach(metrics.registry);
  const auth = config.upstreamCredentials
    ? new UpstreamAuth({
        upstream: config.upstream,
        spec: config.upstreamCredentials,
        upstreamCa: config.upstreamCa,
        timeoutMs: config.upstreamTimeoutMs,
        helperTimeoutMs: config.credentialHelperTimeoutMs,
        log,
        metrics,
      })
    : undefined;
  const gate = createGate(config.access, metrics);
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
  const responding = new WeakMap<Socket, number>();
  const awaitingContinue = new WeakSet<IncomingMessage>();

  function route(req: IncomingMessage, res: ServerResponse): void {
    const target = parseTarget(req.url ?? '/');
    const pathname = target.ok ? target.pathname : '';
    const route = target.ok && isRegistryApi(pathname) ? parseRoute(pathname) : OTHER;
    trackRequest(req, res, route, log, metrics, OWN_PATHS.has(pathname) ? 'debug' : 'info');
    trackResponding(req, res);
    if (!target.ok) return refuse(req, res, new OciError(target.status === 404 ? 'NOT_FOUND' : 'REQUEST_INVALID', target.reason));
    req.url = target.path; // the origin form, also when the client sent the absolute form
    if (!isFramingSupported(req)) {
      return refuse(req, res, new OciError('REQUEST_INVALID', 'Transfer-Encoding must be chunked alone (RFC 9112 section 6.3)'));
    }
    if (OWN_PATHS.has(pathname)) return proceed(req, res, app);
    if (!isRegistryApi(pathname)) return refuse(req, res, new OciError('NOT_FOUND', 'regshim serves the registry API under /v2/, and /healthz, /readyz, /metrics'));
    if (refuseBodyOnDelete(req, res)) return;
    if (!gate) return dispatch(req, res, route);
    const q = target.path.indexOf('?');
    gate(req, res, route, new URLSearchParams(q === -1 ? '' : target.path.slice(q + 1))).then(
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

  /** Hands the request on, with the `100 Continue` that a client may be waiting for. */
  function proceed(req: IncomingMessage, res: ServerResponse, handler: (req: IncomingMessage, res: ServerResponse) => void): void {
    if (awaitingContinue.delete(req)) res.writeContinue();
    handler(req, res);
  }

  /** The request listener: nothing a client sends may throw past it. */
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    try {
      route(req, res);
    } catch (err) {
      fail(req, res, err);
    }
  };

  function fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    log.error({ err, method: req.method }, 'request failed');
    refuse(req, res, err instanceof OciError ? err : new OciError('UNKNOWN', 'regshim failed to answer this request'));
  }

  /** An answer of regshim's own; a body not yet read means the connection cannot be reused. */
  function refuse(req: IncomingMessage, res: ServerResponse, err: OciError): void {
    const unread = !req.complete;
    if (unread) res.shouldKeepAlive = false;
    sendOciError(res, err, req.method, unread ? { connection: 'close' } : {});
  }

  /** Counts responses in flight per connection, so a framing error never writes into one. */
  function trackResponding(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket;
    responding.set(socket, (responding.get(socket) ?? 0) + 1);
    res.once('close', () => responding.set(socket, (responding.get(socket) ?? 1) - 1));
  }

  // Node's requestTimeout (300 s for the whole body) would fail any push longer than five
  // minutes: switch it off and close only connections that go idle.
  const serverOptions: http.ServerOptions = {
    requestTimeout: 0,
    headersTimeout: config.clientHeaderTimeoutMs,
    // How often Node looks for heads that are late; by default every 30 s.
    connectionsCheckingInterval: Math.min(30_000, Math.max(100, config.clientHeaderTimeoutMs / 4)),
    keepAliveTimeout: 65_000,
    maxHeaderSize: config.maxHeaderBytes,
  };
  const server: http.Server = config.tlsCert && config.tlsKey
    ? https.createServer({ ...serverOptions, cert: config.tlsCert, key: config.tlsKey }, onRequest)
    : http.createServer(serverOptions, onRequest);
  server.setTimeout(config.clientIdleTimeoutMs);
  server.maxConnections = config.maxClientConnections;
  // Past either, Node's parser stops and reports HPE_HEADER_OVERFLOW: 431 below.
  server.maxHeadersCount = config.maxHeaderCount;
  // Expect: 100-continue: the body is asked for only once the request is admitted, so an
  // oversized manifest gets 413 at once instead of after the whole body.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    awaitingContinue.add(req);
    onRequest(req, res);
  });
  // CONNECT (a forward proxy's tunnel) is not for regshim: say so instead of dropping the line.
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.end(rawOciError(new OciError('REQUEST_INVALID', 'regshim is not a forward proxy: CONNECT is not served')));
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    log.debug({ code: err.code }, 'malformed or interrupted client request');
    // A response on its way (a blob download with a bad request pipelined behind it):
    // writing an error now would land in the middle of its body.
    if ((responding.get(socket as Socket) ?? 0) > 0 || !socket.writable || socket.destroyed) {
      socket.destroy();
      return;
    }
    socket.end(rawOciError(clientErrorOf(err.code, config)));
  });

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
  }
}

/** What Node's parser reported about a request, as the error the client gets. */
function clientErrorOf(code: string | undefined, config: Config): OciError {
  if (code === 'HPE_HEADER_OVERFLOW') {
    return new OciError('HEADERS_TOO_LARGE', `request heads are limited to ${config.maxHeaderBytes} bytes and ${config.maxHeaderCount} fields (--max-header-bytes, --max-header-count)`);
  }
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return new OciError('REQUEST_TIMEOUT', `the request head did not arrive within ${config.clientHeaderTimeoutMs / 1000} s (--client-header-timeout)`);
  }
  return new OciError('REQUEST_INVALID', 'the request is not well-formed HTTP/1.1', { parser: code });
}

/** An OCI error as a whole HTTP/1.1 response, for a socket that has no response object. */
function rawOciError(err: OciError): string {
  const body = JSON.stringify(err.toJSON());
  const reason = STATUS_CODES[err.status] ?? '';
  return `HTTP/1.1 ${err.status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/**
 * RFC 9112 section 6.3: a request whose Transfer-Encoding does not end in chunked has no
 * knowable length. Registry clients send chunked alone; anything else is refused.
 */
function isFramingSupported(req: IncomingMessage): boolean {
  const te = req.headers['transfer-encoding'];
  return te === undefined || te.trim().toLowerCase() === 'chunked';
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
