// SIMULATION of a registry that filters manifests, in front of the real registry: on a
// manifest PUT it runs one profile's checks (strict-profiles.ts: 'gcr', the default, refuses
// an index or list whose entries are not manifests, as GCR, ECR and distribution 3 do;
// 'quay' and 'gitlab' allow-list media types as their documents say), and a profile that
// refuses an index of blobs never serves one as a manifest either (distribution 2.8 serves a
// blob that is one when asked for it by digest; those registries answer 404). Given the
// registry's data folder, it answers 404 for any digest that is not a manifest there, as
// every registry but distribution 2.8 does. Everything else is forwarded unchanged (Host
// included, so Locations name the gate).
import { existsSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { closeServer, listenOnLoopback } from './local-server.js';
import { type GateProfile, type ManifestDoc, PROFILES } from './strict-profiles.js';

export type { GateProfile } from './strict-profiles.js';

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);
const MANIFEST_TYPES = new Set([
  ...INDEX_TYPES,
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
]);

export interface StrictGate {
  url: string;
  host: string;
  profile: GateProfile;
  /** The manifest PUTs it refused (their paths), for assertions. */
  refused: string[];
  /** The refusals' bodies, in the same order. */
  reasons: string[];
  stop(): Promise<void>;
}

function isIndexOfBlobs(body: Buffer): boolean {
  try {
    const doc = JSON.parse(body.toString('utf8')) as { mediaType?: string; manifests?: { mediaType?: string }[] };
    return INDEX_TYPES.has(doc.mediaType ?? '') && (doc.manifests ?? []).some((m) => !MANIFEST_TYPES.has(m.mediaType ?? ''));
  } catch {
    return false;
  }
}

export interface StrictGateOptions {
  /** The registry's data folder (Registry.dataDir): by digest, serve only what it holds as a manifest. */
  registryDataDir?: string;
}

export async function startStrictGate(target: string, profileName: GateProfile = 'gcr', options: StrictGateOptions = {}): Promise<StrictGate> {
  const profile = PROFILES[profileName];
  const targetUrl = new URL(target);
  const refused: string[] = [];
  const reasons: string[] = [];
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
  /** A blob of the repository, read from the registry behind with the client's credentials. */
  const readBlob = (req: http.IncomingMessage, digest: string) =>
    new Promise<Buffer | undefined>((resolve) => {
      const name = /^\/v2\/(.+)\/manifests\/[^/]+$/.exec(req.url?.split('?')[0] ?? '')?.[1] ?? '';
      const headers = req.headers.authorization ? { authorization: req.headers.authorization } : {};
      const up = http.get({ host: targetUrl.hostname, port: targetUrl.port, path: `/v2/${name}/blobs/${digest}`, headers, agent }, (upRes) => {
        const chunks: Buffer[] = [];
        upRes.on('data', (c: Buffer) => chunks.push(c));
        upRes.on('end', () => resolve(upRes.statusCode === 200 ? Buffer.concat(chunks) : undefined));
      });
      up.on('error', () => resolve(undefined));
    });
  const server = http.createServer((req, res) => {
    if ((req.method === 'GET' || req.method === 'HEAD') && /\/manifests\/[^/]+$/.test(req.url ?? '')) {
      if (!isManifestThere(req.url ?? '')) return notFound(req, res);
      if (!profile.storesIndexOfBlobs) return serveManifest(req, res);
    }
    if (req.method !== 'PUT' || !/\/manifests\/[^/]+$/.test(req.url?.split('?')[0] ?? '')) return forward(req, res);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      let doc: ManifestDoc;
      try {
        doc = JSON.parse(body.toString('utf8')) as ManifestDoc;
      } catch {
        return forward(req, res, body);
      }
      const type = doc.mediaType ?? req.headers['content-type'] ?? '';
      profile.check(doc, type, (digest) => readBlob(req, digest)).then(
        (refusal) => {
          if (!refusal) return forward(req, res, body);
          refused.push(req.url ?? '');
          reasons.push(refusal.body);
          res.writeHead(refusal.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(refusal.body) });
          res.end(refusal.body);
        },
        () => res.destroy(),
      );
    });
  });
  /** Unless the data folder is known, or the reference is a tag: true. */
  const isManifestThere = (url: string): boolean => {
    const m = /^\/v2\/(.+)\/manifests\/(sha256|sha512):([0-9a-f]+)$/.exec(url.split('?')[0] ?? '');
    if (!m || options.registryDataDir === undefined) return true;
    return existsSync(join(options.registryDataDir, 'docker/registry/v2/repositories', m[1]!, '_manifests/revisions', m[2]!, m[3]!, 'link'));
  };
  const notFound = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const text = JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] });
    res.writeHead(404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(req.method === 'HEAD' ? undefined : text);
  };
  /** Reads the manifest itself and hides an index of blobs, as a registry that never stored one. */
  const serveManifest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const up = http.request({ host: targetUrl.hostname, port: targetUrl.port, method: 'GET', path: req.url, headers: req.headers, agent }, (upRes) => {
      const chunks: Buffer[] = [];
      upRes.on('data', (c: Buffer) => chunks.push(c));
      upRes.on('end', () => {
        const body = Buffer.concat(chunks);
        if (upRes.statusCode === 200 && isIndexOfBlobs(body)) return notFound(req, res);
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
    profile: profileName,
    refused,
    reasons,
    stop: () => {
      agent.destroy();
      return closeServer(server);
    },
  };
}
