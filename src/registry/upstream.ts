// regshim's own calls to the upstream registry (manifests, the index blob, readiness).
// Pass-through traffic does not come here: it streams through passthrough/.
import type { IncomingHttpHeaders } from 'node:http';
import { Pool, request as undiciRequest, errors as undiciErrors } from 'undici';
import type { Config } from '../config.js';
import { scopeOfPath } from './auth/scope.js';
import type { UpstreamAuth } from './auth/upstream-auth.js';
import { OciError } from './errors.js';
import { HOP_BY_HOP, hopByHopNames } from './hop-by-hop.js';

export type Headers = Record<string, string | string[]>;

export interface UpstreamResponse {
  status: number;
  headers: Headers;
  /** Empty for HEAD. */
  body: Buffer;
  /** Milliseconds until the response headers arrived. */
  latencyMs: number;
}

export interface UpstreamRequest {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE' | 'PATCH';
  /** A path with query, or an absolute URL on the upstream (upload Locations). */
  path: string;
  headers: Headers;
  body?: Buffer;
  /** Aborts the upstream request, e.g. when the client has gone. */
  signal?: AbortSignal | undefined;
  /** Largest body to read; past it the request fails with MANIFEST_TOO_LARGE. */
  maxBodyBytes: number;
}

// Hop-by-hop headers, those regshim sets itself, and what an ingress adds about the
// client's side. The upstream answers regshim, and regshim rewrites
// the Locations it sends to name the origin the client used: a registry that saw
// X-Forwarded-Host would name that host in an upload Location, on regshim's own uploads too.
export const NOT_FORWARDED: ReadonlySet<string> = new Set([
  ...HOP_BY_HOP, 'host', 'content-length', 'expect',
  'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port', 'x-forwarded-prefix',
  'x-forwarded-server', 'x-real-ip',
]);

/** The client's request headers that go on to the upstream: Authorization among them, unchanged. */
export function forwardedRequestHeaders(headers: IncomingHttpHeaders, overrides: Headers = {}): Headers {
  const out: Headers = {};
  const dropped = new Set(hopByHopNames(headers));
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || NOT_FORWARDED.has(name) || dropped.has(name)) continue;
    out[name] = value;
  }
  return Object.assign(out, overrides);
}

// What regshim's own calls (the index blob, a manifest read to restore an index) take from
// the client: its credentials, and its name for the registry's logs. Nothing else.
const OWN_CALL_HEADERS = ['authorization', 'user-agent'] as const;

/** Headers for a call regshim makes on a client's behalf. */
export function ownCallHeaders(headers: IncomingHttpHeaders, overrides: Headers = {}): Headers {
  const out: Headers = {};
  for (const name of OWN_CALL_HEADERS) {
    const value = headers[name];
    if (value !== undefined) out[name] = value;
  }
  return Object.assign(out, overrides);
}

export class Upstream {
  private readonly pool: Pool;
  readonly origin: string;
  private readonly timeoutMs: number;

  constructor(
    config: Config,
    private readonly auth?: UpstreamAuth,
  ) {
    this.origin = config.upstream.origin;
    this.timeoutMs = config.upstreamTimeoutMs;
    this.pool = new Pool(this.origin, {
      connections: config.upstreamConnections,
      connect: { timeout: Math.min(config.upstreamTimeoutMs, 30_000), ...(config.upstreamCa ? { ca: config.upstreamCa } : {}) },
      headersTimeout: config.upstreamTimeoutMs,
      bodyTimeout: config.upstreamTimeoutMs,
      keepAliveTimeout: 30_000,
    });
  }

  /**
   * With regshim's own credentials, when it has them, instead of the client's; bodies here
   * are buffers, so a 401 (a token refused, helper credentials gone stale) is retried once.
   */
  async request(req: UpstreamRequest): Promise<UpstreamResponse> {
    const auth = this.auth;
    if (!auth) return this.send(req);
    const scopes = scopeOfPath(req.method, this.pathOf(req.path));
    const send = async () => {
      const headers = { ...req.headers };
      delete headers.authorization;
      const authorization = await upstreamAuthorization(auth, scopes);
      if (authorization !== undefined) headers.authorization = authorization;
      return this.send({ ...req, headers });
    };
    const first = await send();
    if (first.status !== 401) return first;
    auth.invalidate(scopes, first.headers['www-authenticate']);
    return send();
  }

  private async send(req: UpstreamRequest): Promise<UpstreamResponse> {
    const started = performance.now();
    const path = this.pathOf(req.path);
    let res;
    try {
      res = await this.pool.request({
        method: req.method,
        path,
        headers: req.headers,
        body: req.body ?? null,
        signal: req.signal,
        // undici closes the connection after every HEAD unless told not to (a guard against
        // servers that send a body anyway); registries don't, and BuildKit resolves with HEADs.
        reset: false,
      });
    } catch (err) {
      throw toOciError(err, this.origin);
    }
    const latencyMs = performance.now() - started;
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > req.maxBodyBytes) {
          res.body.destroy();
          throw new OciError('MANIFEST_TOO_LARGE', `the upstream answered with more than ${req.maxBodyBytes} bytes`, {
            limit: req.maxBodyBytes,
          });
        }
        chunks.push(chunk);
      }
    } catch (err) {
      throw err instanceof OciError ? err : toOciError(err, this.origin);
    }
    return { status: res.statusCode, headers: res.headers as Headers, body: Buffer.concat(chunks, size), latencyMs };
  }

  /**
   * A GET on another host that the upstream redirected to (presigned S3 or GCS URLs):
   * without the client's credentials, which belong to the registry alone.
   */
  async fetchElsewhere(url: URL, maxBodyBytes: number): Promise<UpstreamResponse> {
    const started = performance.now();
    try {
      const res = await undiciRequest(url, { method: 'GET', headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs });
      const body = Buffer.from(await res.body.arrayBuffer());
      if (body.length > maxBodyBytes) throw new OciError('MANIFEST_TOO_LARGE', `the blob at ${url.host} is larger than ${maxBodyBytes} bytes`);
      return { status: res.statusCode, headers: res.headers as Headers, body, latencyMs: performance.now() - started };
    } catch (err) {
      throw toOciError(err, url.origin);
    }
  }

  /** An upload Location may be absolute (on the upstream) or relative; undici wants a path. */
  private pathOf(location: string): string {
    if (location.startsWith('/')) return location;
    let url: URL;
    try {
      url = new URL(location, this.origin);
    } catch {
      throw new OciError('UPSTREAM_INVALID', 'the upstream sent an upload location that is not a URL');
    }
    if (url.origin !== this.origin) {
      throw new OciError('UPSTREAM_INVALID', `the upstream sent an upload location on another host (${url.host})`);
    }
    return url.pathname + url.search;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** regshim's Authorization for these scopes; no credentials to be had is a 503 the operator can read. */
export async function upstreamAuthorization(auth: UpstreamAuth, scopes: readonly string[]): Promise<string | undefined> {
  try {
    return await auth.headerFor(scopes);
  } catch (err) {
    throw new OciError('UNAVAILABLE', `regshim cannot authenticate to the upstream: ${(err as Error).message}`);
  }
}

/** What went wrong talking to the upstream, as the error a client sees: 504 for silence, 502 for the rest. */
export function toOciError(err: unknown, origin: string): OciError {
  if (err instanceof OciError) return err;
  const e = err as { code?: string; name?: string; message?: string };
  if (
    err instanceof undiciErrors.HeadersTimeoutError ||
    err instanceof undiciErrors.BodyTimeoutError ||
    err instanceof undiciErrors.ConnectTimeoutError ||
    e.code === 'UPSTREAM_TIMEOUT'
  ) {
    return new OciError('UPSTREAM_TIMEOUT', `the upstream registry ${origin} did not answer in time`, { cause: e.code });
  }
  return new OciError('UPSTREAM_UNREACHABLE', `the upstream registry ${origin} cannot be reached`, {
    cause: e.code ?? e.name ?? 'error',
  });
}

/** A Location the upstream sent, resolved against it; one that is not a URL is the upstream's fault. */
export function resolveLocation(location: string, upstream: URL): URL {
  try {
    return new URL(location, upstream);
  } catch {
    throw new OciError('UPSTREAM_INVALID', 'the upstream sent a Location that is not a URL');
  }
}

export function header(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}
