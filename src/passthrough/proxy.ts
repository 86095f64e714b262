// Everything that is not a cache manifest streams through here, socket to socket, with
// back-pressure. The guards are those of ../../docs (node-proxy-pitfalls): each has a test.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { createProxyServer } from 'http-proxy-3';
import { INBOUND_CHALLENGE } from '../access/gate.js';
import type { Config } from '../config.js';
import { addUpstreamTime } from '../observability/access-log.js';
import type { Logger } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import { scopeOfPath } from '../registry/auth/scope.js';
import type { UpstreamAuth } from '../registry/auth/upstream-auth.js';
import { OciError } from '../registry/errors.js';
import { hopByHopNames } from '../registry/hop-by-hop.js';
import { NOT_FORWARDED, upstreamAuthorization } from '../registry/upstream.js';
import { BlobRelay } from './relay.js';
import { releaseWrittenChunks } from './release-written.js';
import { answerAndClose } from '../intake/close.js';
import { publicOrigin, rewriteResponseHeaders } from './rewrite.js';

export interface Passthrough {
  (req: IncomingMessage, res: ServerResponse): void;
  close(): void;
}

const TIMEOUT = 'UPSTREAM_TIMEOUT';
/** The scopes each request's upstream credentials were had for, to drop them after a 401. */
const authScopes = new WeakMap<IncomingMessage, string[]>();
/** http-proxy's options for each request, and the requests already sent again after a 401. */
const callOptions = new WeakMap<IncomingMessage, { selfHandleResponse?: boolean }>();
const retried = new WeakSet<IncomingMessage>();
// What an ingress says about the client's side stays with regshim (registry/upstream.ts).
const FORWARDING_HEADERS = [...NOT_FORWARDED].filter((h) => h === 'forwarded' || h.startsWith('x-'));
// Kept although hop-by-hop or named by Connection: the body's framing (the proxy sends the
// body on as it came, chunked or not) and the target.
const FRAMING = new Set(['host', 'content-length', 'transfer-encoding']);

export function createPassthrough(config: Config, log: Logger, metrics: Metrics, auth?: UpstreamAuth): Passthrough {
  const tlsUpstream = config.upstream.protocol === 'https:';
  // Keep-alive: a connection per request costs a third of the small-request rate.
  // Bounded: excess requests queue in the agent instead of opening a connection each.
  const agentOptions = { keepAlive: true, keepAliveMsecs: 10_000, scheduling: 'lifo' as const, maxSockets: config.upstreamConnections };
  const agent = tlsUpstream
    ? new https.Agent({ ...agentOptions, ...(config.upstreamCa ? { ca: config.upstreamCa } : {}) })
    : new ReusedReadBufferAgent(agentOptions);
  const proxy = createProxyServer({
    target: config.upstream.origin,
    agent,
    changeOrigin: true, // the upstream sees its own Host (virtual hosting, SNI); Locations are rewritten back
    xfwd: false,
    followRedirects: false, // a 307 to object storage must reach the client
    ...(config.upstreamCa ? { ca: config.upstreamCa } : {}),
  });
  const tlsClients = config.tlsCert !== undefined;
  const fallbackHost = `${config.listenHost}:${config.listenPort}`;

  // The origin each client used, read before its forwarding headers are removed.
  const origins = new WeakMap<IncomingMessage, string>();

  // No header changes here: a request queued for a free upstream connection has already
  // sent its headers when this runs, and changing them then throws.
  proxy.on('proxyReq', (proxyReq, req, _res, options) => {
    if (auth) callOptions.set(req, options);
    releaseWrittenChunks(proxyReq);
    const started = performance.now();
    proxyReq.once('response', () => addUpstreamTime(req, performance.now() - started));
    // An idle upstream, before or during the body, fails the request instead of hanging it.
    proxyReq.setTimeout(config.upstreamTimeoutMs, () => {
      proxyReq.destroy(Object.assign(new Error('upstream idle timeout'), { code: TIMEOUT }));
    });
  });

  proxy.on('proxyRes', (proxyRes, req, res) => {
    const options = callOptions.get(req);
    // A streamed body cannot be replayed: the client's retry gets fresh credentials.
    if (proxyRes.statusCode === 401 && credentialsRefused(req, res, proxyRes.headers as Record<string, string | string[]>, options !== undefined && !hasBody(req))) {
      // Keep this answer from the client: http-proxy reads the flag after this event.
      options!.selfHandleResponse = true;
      proxyRes.resume();
      return;
    }
    rewriteResponseHeaders(proxyRes.headers, config.upstream, origins.get(req) ?? publicOrigin(req.headers, tlsClients, fallbackHost));
    // An upstream that dies mid-body: end the client's response at once, don't let it hang.
    proxyRes.once('close', () => {
      if (!proxyRes.complete) res.destroy();
    });
  });

  const upstreamFailed = (err: Error, req: IncomingMessage, res: ServerResponse | net.Socket): void => {
    const code = (err as NodeJS.ErrnoException).code;
    metrics.upstreamErrors.inc({ kind: code === TIMEOUT ? 'timeout' : 'connection' });
    if (!('setHeader' in res)) return;
    if (res.headersSent || req.socket.destroyed) {
      res.destroy();
      return;
    }
    log.warn({ err: { code, message: err.message }, method: req.method }, 'upstream request failed');
    const oci = code === TIMEOUT
      ? new OciError('UPSTREAM_TIMEOUT', `the upstream registry ${config.upstream.origin} did not answer in time`)
      : new OciError('UPSTREAM_UNREACHABLE', `the upstream registry ${config.upstream.origin} cannot be reached`, { cause: code });
    // The client may still be sending a body nobody reads: close once it has the answer.
    answerAndClose(req, res, oci);
  };
  proxy.on('error', (err, req, res) => upstreamFailed(err as Error, req, res));

  // GETs from a plain-http upstream go socket to socket (relay.ts): half the CPU and memory.
  const relay = tlsUpstream ? undefined : new BlobRelay({
    upstream: config.upstream,
    timeoutMs: config.upstreamTimeoutMs,
    maxConnections: config.upstreamConnections,
    onHead: (head, req, res) => {
      addUpstreamTime(req, performance.now() - (relayStarted.get(req) ?? performance.now()));
      // A GET has nothing to replay.
      if (head.status === 401 && credentialsRefused(req, res, head.headers, true)) return 'again';
      rewriteResponseHeaders(head.headers, config.upstream, origins.get(req) ?? publicOrigin(req.headers, tlsClients, fallbackHost));
    },
    onError: upstreamFailed,
  });
  const relayStarted = new WeakMap<IncomingMessage, number>();

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    origins.set(req, publicOrigin(req.headers, tlsClients, fallbackHost));
    for (const name of FORWARDING_HEADERS) delete req.headers[name];
    // A client's `Connection: close` is about its own connection; passed on, it would close
    // regshim's keep-alive connection upstream too. Proxy-Authorization is not the registry's.
    for (const name of hopByHopNames(req.headers)) if (!FRAMING.has(name)) delete req.headers[name];
    // node:http has already answered 100 Continue; left in, Expect makes http-proxy skip its proxyReq hook.
    delete req.headers.expect;
    if (!auth) return forward(req, res);
    delete req.headers.authorization;
    withCredentials(req, res);
  };
  const forward = (req: IncomingMessage, res: ServerResponse): void => {
    if (relay && BlobRelay.accepts(req)) {
      relayStarted.set(req, performance.now());
      relay.handle(req, res);
      return;
    }
    proxy.web(req, res);
  };
  /**
   * An upstream 401 to regshim's credentials: they are dropped, and a request that can be
   * sent again is, once, with fresh ones (true). Otherwise the 401 goes to the client, and a
   * client that logs in to regshim is told to do so again.
   */
  const credentialsRefused = (req: IncomingMessage, res: ServerResponse, headers: Record<string, string | string[]>, replayable: boolean): boolean => {
    const scopes = authScopes.get(req);
    if (!auth || !scopes) return false;
    auth.invalidate(scopes, headers['www-authenticate']);
    if (replayable && !retried.has(req)) {
      retried.add(req);
      withCredentials(req, res);
      return true;
    }
    if (config.access.htpasswd) headers['www-authenticate'] = INBOUND_CHALLENGE;
    return false;
  };
  /** The header is had before the request goes: its body streams and cannot be sent twice. */
  const withCredentials = (req: IncomingMessage, res: ServerResponse): void => {
    if (!auth) return;
    const scopes = scopeOfPath(req.method ?? 'GET', req.url ?? '/');
    upstreamAuthorization(auth, scopes).then(
      (authorization) => {
        if (authorization !== undefined) req.headers.authorization = authorization;
        authScopes.set(req, scopes);
        forward(req, res);
      },
      (err: unknown) => {
        const oci = err instanceof OciError ? err : new OciError('UNAVAILABLE', 'regshim could not obtain upstream credentials');
        log.warn({ err: { code: oci.code, message: oci.message }, method: req.method }, 'no upstream credentials for a request');
        // An upload's body is still unread.
        answerAndClose(req, res, oci);
      },
    );
  };
  return Object.assign(handler, {
    close: () => {
      relay?.close();
      proxy.close();
      agent.destroy();
    },
  });
}

/**
 * Reads each upstream socket into one buffer of its own instead of a fresh 64 KiB buffer per
 * read: a download otherwise allocates 16,000 buffers a GiB, which V8 frees late, so memory
 * and page faults grow with throughput (docs/performance.md). Safe because Node's HTTP
 * parser copies every body chunk out before the next read. TLS sockets cannot do this.
 */
export class ReusedReadBufferAgent extends http.Agent {
  override createConnection(options: net.NetConnectOpts): net.Socket {
    const buffer = Buffer.allocUnsafe(64 * 1024);
    const socket: net.Socket = net.createConnection({
      ...options,
      // Always true: back-pressure comes from the parser, which pauses the socket itself.
      onread: {
        buffer,
        callback: (bytes) => {
          socket.emit('data', buffer.subarray(0, bytes));
          return true;
        },
      },
    });
    return socket;
  }
}

/**
 * http-proxy sets Content-Length: 0 on a DELETE/OPTIONS without one and still pipes the
 * body: a request-smuggling path. OCI DELETE has no body, so one that carries a body is
 * refused before anything reads it. True when the request was refused.
 */
export function refuseBodyOnDelete(req: IncomingMessage, res: ServerResponse): boolean {
  const method = req.method;
  if ((method !== 'DELETE' && method !== 'OPTIONS') || !hasBody(req)) return false;
  answerAndClose(req, res, new OciError('UNSUPPORTED', `a ${method} request must not carry a body`));
  return true;
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}
