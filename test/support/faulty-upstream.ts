// SIMULATION, not a registry: faults the real registry cannot be made to produce on cue
// (dying mid-body, never answering). Each behaviour is chosen per request path (a key
// ending in `*` matches every path it starts), so tests can give each request a path of
// its own (regshim's own upstream calls carry no client query); each
// request is known by its whole target (path and query), so a test that gives its request
// a query of its own never sees another test's request.
import http from 'node:http';
import { closeServer, listenOnLoopback } from './local-server.js';

export type Fault =
  /** Headers and half the body, then the connection is destroyed. */
  | 'die-mid-body'
  /** Reads the request and never answers. */
  | 'silent';

export interface SeenRequest {
  /** When the request reached the upstream (performance.now()). */
  arrivedAt: number;
  /** Resolves when the upstream sees the request's connection close (the proxy cancelled it). */
  closed: Promise<number>;
}

export interface FaultyUpstream {
  url: string;
  /**
   * Resolves once a request for exactly this target (path and query) has reached the
   * upstream; rejects after `timeoutMs` if none does.
   */
  arrival(target: string, timeoutMs?: number): Promise<SeenRequest>;
  stop(): Promise<void>;
}

interface Waiter {
  seen: Promise<SeenRequest>;
  resolve(seen: SeenRequest): void;
}

export async function startFaultyUpstream(faults: Record<string, Fault>): Promise<FaultyUpstream> {
  const waiters = new Map<string, Waiter>();
  const waiterFor = (target: string): Waiter => {
    let waiter = waiters.get(target);
    if (!waiter) {
      let resolve!: (seen: SeenRequest) => void;
      const seen = new Promise<SeenRequest>((r) => (resolve = r));
      waiter = { seen, resolve };
      waiters.set(target, waiter);
    }
    return waiter;
  };
  const server = http.createServer((req, res) => {
    const target = req.url ?? '';
    const closed = new Promise<number>((resolve) => res.once('close', () => resolve(performance.now())));
    waiterFor(target).resolve({ arrivedAt: performance.now(), closed });
    const fault = faultOf(faults, target.split('?')[0] ?? '');
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
    arrival: (target, timeoutMs = 5_000) => {
      const { seen } = waiterFor(target);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no request for ${target} reached the simulated upstream in ${timeoutMs} ms`)), timeoutMs);
      });
      return Promise.race([seen, timeout]).finally(() => clearTimeout(timer));
    },
    stop: () => closeServer(server),
  };
}

function faultOf(faults: Record<string, Fault>, path: string): Fault | undefined {
  const exact = faults[path];
  if (exact) return exact;
  for (const [key, fault] of Object.entries(faults)) {
    if (key.endsWith('*') && path.startsWith(key.slice(0, -1))) return fault;
  }
  return undefined;
}
