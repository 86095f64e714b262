// SIMULATION, not a registry: faults the real registry cannot be made to produce on cue
// (dying mid-body, never answering). Each behaviour is chosen per request path.
import http from 'node:http';
import { closeServer, listenOnLoopback } from './local-server.js';

export type Fault =
  /** Headers and half the body, then the connection is destroyed. */
  | 'die-mid-body'
  /** Reads the request and never answers. */
  | 'silent';

export interface FaultyUpstream {
  url: string;
  /** Resolves when the upstream sees its request's connection close (the proxy cancelled it). */
  closed(path: string): Promise<number>;
  stop(): Promise<void>;
}

export async function startFaultyUpstream(faults: Record<string, Fault>): Promise<FaultyUpstream> {
  const closedAt = new Map<string, Promise<number>>();
  const server = http.createServer((req, res) => {
    const path = req.url?.split('?')[0] ?? '';
    closedAt.set(path, new Promise((resolve) => res.once('close', () => resolve(performance.now()))));
    const fault = faults[path];
    if (fault === 'die-mid-body') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '1048576' });
      res.write(Buffer.alloc(512 * 1024, 7), () => setImmediate(() => req.socket.destroy()));
      return;
    }
    if (fault === 'silent') {
      req.resume();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' });
    res.end('{}');
  });
  const port = await listenOnLoopback(server);
  return {
    url: `http://127.0.0.1:${port}`,
    closed: async (path) => {
      for (let i = 0; i < 200 && !closedAt.has(path); i++) await new Promise((r) => setTimeout(r, 10));
      const p = closedAt.get(path);
      if (!p) throw new Error(`no request for ${path} reached the simulated upstream`);
      return p;
    },
    stop: () => closeServer(server),
  };
}
