// Talking to the upstream on a client's behalf, and answering the client: with the
// upstream's own answer (rewritten Locations aside) or with a restored index.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config.js';
import { addUpstreamTime, markAction } from '../observability/access-log.js';
import { publicOrigin, rewriteResponseHeaders } from '../passthrough/rewrite.js';
import { type Headers, type Upstream, type UpstreamRequest, type UpstreamResponse, header, ownCallHeaders, resolveLocation } from '../registry/upstream.js';

/** An upstream answer that goes back to the client as it is (errors, auth challenges). */
export class UpstreamAnswer extends Error {
  constructor(readonly response: UpstreamResponse) {
    super(`upstream answered ${response.status}`);
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export type Exchange = ReturnType<typeof createExchange>;

export function createExchange(config: Config, upstream: Upstream) {
  const tls = config.tlsCert !== undefined;
  const fallbackHost = `${config.listenHost}:${config.listenPort}`;

  /** One upstream call on behalf of a client: its credentials, cancelled when it leaves. */
  async function call(req: IncomingMessage, res: ServerResponse, r: Omit<UpstreamRequest, 'maxBodyBytes' | 'signal'> & { maxBodyBytes?: number }) {
    const controller = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) controller.abort();
    };
    res.once('close', onClose);
    try {
      const up = await upstream.request({ maxBodyBytes: config.maxManifestBytes, ...r, signal: controller.signal });
      addUpstreamTime(req, up.latencyMs);
      return up;
    } finally {
      res.off('close', onClose);
    }
  }

  /** The client's headers for regshim's own calls: its credentials and its name, nothing else. */
  function clientHeaders(req: IncomingMessage, overrides: Headers = {}): Headers {
    return ownCallHeaders(req.headers, overrides);
  }

  function sendUpstream(req: IncomingMessage, res: ServerResponse, up: UpstreamResponse): void {
    const headers: Record<string, string | string[] | undefined> = {};
    for (const [name, value] of Object.entries(up.headers)) {
      if (!['connection', 'keep-alive', 'transfer-encoding', 'content-length'].includes(name)) headers[name] = value;
    }
    rewriteResponseHeaders(headers, config.upstream, publicOrigin(req.headers, tls, fallbackHost));
    const length = req.method === 'HEAD' ? header(up.headers, 'content-length') : String(up.body.length);
    if (length !== undefined) headers['content-length'] = length;
    res.writeHead(up.status, headers as Record<string, string | string[]>);
    res.end(req.method === 'HEAD' ? undefined : up.body);
  }

  /** An index regshim gives back: the bytes a client pushed (restored), or one made from BuildKit's manifest. */
  function sendIndex(req: IncomingMessage, res: ServerResponse, index: { digest: string; mediaType: string; size: number; bytes?: Buffer }, action: 'restored' | 'made' = 'restored'): void {
    markAction(req, action);
    res.writeHead(200, {
      'content-type': index.mediaType,
      'content-length': String(index.size),
      'docker-content-digest': index.digest,
      etag: `"${index.digest}"`,
      'docker-distribution-api-version': 'registry/2.0',
    });
    res.end(req.method === 'HEAD' ? undefined : index.bytes);
  }

  /** GET a blob for regshim itself, following a redirect to object storage (without credentials). */
  async function getBlob(req: IncomingMessage, res: ServerResponse, name: string, digest: string): Promise<UpstreamResponse> {
    let up = await call(req, res, { method: 'GET', path: `/v2/${name}/blobs/${digest}`, headers: clientHeaders(req) });
    for (let hops = 0; hops < 3 && REDIRECTS.has(up.status); hops++) {
      const location = header(up.headers, 'location');
      if (location === undefined) break;
      const target = resolveLocation(location, config.upstream);
      const sameHost = target.origin === config.upstream.origin;
      up = sameHost
        ? await call(req, res, { method: 'GET', path: target.pathname + target.search, headers: clientHeaders(req) })
        : await upstream.fetchElsewhere(target, config.maxManifestBytes);
    }
    return up;
  }

  /**
   * Uploads bytes regshim keeps (an index) as a blob of the repository, unless it is there
   * already: 'present', 'uploaded', or the upstream's refusal.
   */
  async function storeBlob(req: IncomingMessage, res: ServerResponse, name: string, digest: string, bytes: Buffer): Promise<'present' | 'uploaded' | UpstreamResponse> {
    const exists = () => call(req, res, { method: 'HEAD', path: `/v2/${name}/blobs/${digest}`, headers: clientHeaders(req) });
    const head = await exists();
    if (head.status === 200) return 'present';
    // A 401 here would challenge for pull only; the POST's challenge asks for push, as the
    // client's own manifest PUT would have.
    if (head.status !== 404 && head.status !== 401) return head;
    const failed = await uploadBlob(req, res, name, digest, bytes);
    // Pushes of one new cache upload the same blob at once, and distribution fails a losing
    // commit (400 DIGEST_INVALID, or 500) while the winner's may not be visible yet: look
    // again, and upload once more if it is still missing.
    if (failed === undefined) return 'uploaded';
    if (failed.status === 401 || failed.status === 403) return failed;
    if ((await exists()).status === 200) return 'present';
    return (await uploadBlob(req, res, name, digest, bytes)) ?? 'uploaded';
  }

  /** POST + monolithic PUT, as containerd uploads; undefined once stored, else the refusal. */
  async function uploadBlob(req: IncomingMessage, res: ServerResponse, name: string, digest: string, bytes: Buffer): Promise<UpstreamResponse | undefined> {
    const post = await call(req, res, { method: 'POST', path: `/v2/${name}/blobs/uploads/`, headers: clientHeaders(req, { 'content-length': '0' }) });
    const location = header(post.headers, 'location');
    if (post.status !== 202 || location === undefined) return post;
    const url = resolveLocation(location, config.upstream);
    url.searchParams.set('digest', digest);
    const put = await call(req, res, {
      method: 'PUT',
      path: url.origin === config.upstream.origin ? url.pathname + url.search : url.href,
      // distribution reads any other Content-Type as a form and fails the PUT.
      headers: clientHeaders(req, { 'content-type': 'application/octet-stream' }),
      body: bytes,
    });
    return put.status === 201 ? undefined : put;
  }


  return { call, clientHeaders, sendUpstream, sendIndex, getBlob, storeBlob };
}
