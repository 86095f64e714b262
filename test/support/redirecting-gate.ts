// SIMULATION of registries that send blob downloads elsewhere: ECR answers a blob GET with
// 307 to a presigned S3 URL, Artifact Registry with 302 and a relative Location. The gate
// sits in front of the real registry; its "object store" listens on another loopback
// host (127.0.0.2) and serves the bytes from the registry.
import http from 'node:http';
import { closeServer, listenOnLoopback } from './local-server.js';

export interface RedirectingGate {
  url: string;
  host: string;
  /** Requests the object store served: path and whether they carried credentials. */
  storeHits: { path: string; authorization: boolean }[];
  stop(): Promise<void>;
}

export async function startRedirectingGate(target: string, mode: 'presigned' | 'relative'): Promise<RedirectingGate> {
  const targetUrl = new URL(target);
  const storeHits: { path: string; authorization: boolean }[] = [];
  const agent = new http.Agent({ keepAlive: true });
  const pipeTo = (req: http.IncomingMessage, res: http.ServerResponse, path: string, headers: http.IncomingHttpHeaders) => {
    const up = http.request({ host: targetUrl.hostname, port: targetUrl.port, method: req.method, path, headers, agent }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  };

  const store = http.createServer((req, res) => {
    const path = (req.url ?? '').replace(/^\/bucket/, '').split('?')[0] ?? '';
    storeHits.push({ path, authorization: req.headers.authorization !== undefined });
    pipeTo(req, res, path, { host: targetUrl.host });
  });
  const storePort = await listenOnLoopback(store, '127.0.0.2');

  const gate = http.createServer((req, res) => {
    const path = req.url ?? '';
    if (path.startsWith('/relative-store/')) {
      storeHits.push({ path: path.slice('/relative-store'.length), authorization: req.headers.authorization !== undefined });
      return pipeTo(req, res, path.slice('/relative-store'.length), req.headers);
    }
    if (req.method === 'GET' && /\/blobs\/sha256:[a-f0-9]{64}$/.test(path)) {
      const location = mode === 'presigned' ? `http://127.0.0.2:${storePort}/bucket${path}?X-Amz-Signature=sig` : `/relative-store${path}`;
      res.writeHead(mode === 'presigned' ? 307 : 302, { location, 'content-length': '0' });
      res.end();
      return;
    }
    pipeTo(req, res, path, req.headers);
  });
  const port = await listenOnLoopback(gate);
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    storeHits,
    stop: async () => {
      agent.destroy();
      await Promise.all([closeServer(gate), closeServer(store)]);
    },
  };
}
