// SIMULATION of a strict registry (ECR, Quay, GCR): a gate in front of the real registry
// that refuses an index or list whose entries are not manifests, as those registries do,
// and never serves such an index as a manifest (distribution 2.8 serves a blob that is
// one when asked for it by digest; strict registries answer 404). Everything else is
// forwarded unchanged (Host included, so Locations name the gate).
import http from 'node:http';
import { closeServer, listenOnLoopback } from './local-server.js';

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);
const MANIFEST_TYPES = new Set([
  ...INDEX_TYPES,
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
]);

export interface StrictGate {
  url: string;
  host: string;
  /** The refusals it made, for assertions. */
  refused: string[];
  stop(): Promise<void>;
}

/** GCR's wording for the same refusal. */
function refusal(mediaType: string): string {
  return JSON.stringify({
    errors: [{ code: 'MANIFEST_INVALID', message: `Failed to parse manifest: Image index child manifest not supported: ${mediaType}.` }],
  });
}

function isIndexOfBlobs(body: Buffer): boolean {
  try {
    const doc = JSON.parse(body.toString('utf8')) as { mediaType?: string; manifests?: { mediaType?: string }[] };
    return INDEX_TYPES.has(doc.mediaType ?? '') && (doc.manifests ?? []).some((m) => !MANIFEST_TYPES.has(m.mediaType ?? ''));
  } catch {
    return false;
  }
}

export async function startStrictGate(target: string): Promise<StrictGate> {
  const targetUrl = new URL(target);
  const refused: string[] = [];
  const agent = new http.Agent({ keepAlive: true });
  const forward = (req: http.IncomingMessage, res: http.ServerResponse, body?: Buffer) => {
    const up = http.request({ host: targetUrl.hostname, port: targetUrl.port, method: req.method, path: req.url, headers: req.headers, agent }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => res.destroy());
    if (body) up.end(body);
    else req.pipe(up);
  };
  const server = http.createServer((req, res) => {
    if ((req.method === 'GET' || req.method === 'HEAD') && /\/manifests\/[^/]+$/.test(req.url ?? '')) return serveManifest(req, res);
    if (req.method !== 'PUT' || !/\/manifests\/[^/]+$/.test(req.url?.split('?')[0] ?? '')) return forward(req, res);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const doc = JSON.parse(body.toString('utf8')) as { mediaType?: string; manifests?: { mediaType?: string }[] };
      const type = doc.mediaType ?? req.headers['content-type'] ?? '';
      const child = INDEX_TYPES.has(type) ? doc.manifests?.find((m) => !MANIFEST_TYPES.has(m.mediaType ?? '')) : undefined;
      if (child) {
        refused.push(req.url ?? '');
        const text = refusal(child.mediaType ?? '');
        res.writeHead(400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        res.end(text);
        return;
      }
      forward(req, res, body);
    });
  });
  /** Reads the manifest itself and hides an index of blobs, as a registry that never stored one. */
  const serveManifest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const up = http.request({ host: targetUrl.hostname, port: targetUrl.port, method: 'GET', path: req.url, headers: req.headers, agent }, (upRes) => {
      const chunks: Buffer[] = [];
      upRes.on('data', (c: Buffer) => chunks.push(c));
      upRes.on('end', () => {
        const body = Buffer.concat(chunks);
        if (upRes.statusCode === 200 && isIndexOfBlobs(body)) {
          const text = JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] });
          res.writeHead(404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
          res.end(req.method === 'HEAD' ? undefined : text);
          return;
        }
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        res.end(req.method === 'HEAD' ? undefined : body);
      });
    });
    up.on('error', () => res.destroy());
    up.end();
  };

  const port = await listenOnLoopback(server);
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    refused,
    stop: () => {
      agent.destroy();
      return closeServer(server);
    },
  };
}
