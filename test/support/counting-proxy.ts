// An instrumented wire between regshim and the real registry: it forwards every request
// unchanged (Host too, so the registry's URLs name the wire) and records it, so tests can assert exact upstream request counts.
import http from 'node:http';
import { closeServer, listenOnLoopback } from './local-server.js';

export interface Recorded {
  method: string;
  path: string;
  status: number;
  headers: http.IncomingHttpHeaders;
}

export interface CountingProxy {
  url: string;
  requests: Recorded[];
  /** TCP connections regshim opened to the wire, and how many are open now. */
  connections: { opened: number; open: number; peak: number };
  /** The requests recorded since the last reset, as "METHOD path" without the query. */
  take(): string[];
  stop(): Promise<void>;
}

export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const requests: Recorded[] = [];
  const agent = new http.Agent({ keepAlive: true });
  const targetUrl = new URL(target);
  const server = http.createServer((req, res) => {
    const up = http.request(
      { host: targetUrl.hostname, port: targetUrl.port, method: req.method, path: req.url, headers: req.headers, agent },
      (upRes) => {
        requests.push({ method: req.method ?? '', path: req.url ?? '', status: upRes.statusCode ?? 0, headers: req.headers });
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  const connections = { opened: 0, open: 0, peak: 0 };
  server.on('connection', (socket) => {
    connections.opened++;
    connections.peak = Math.max(connections.peak, ++connections.open);
    socket.once('close', () => connections.open--);
  });
  const port = await listenOnLoopback(server);
  let mark = 0;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    connections,
    take() {
      const out = requests.slice(mark).map((r) => `${r.method} ${r.path.split('?')[0]}`);
      mark = requests.length;
      return out;
    },
    stop: () => {
      agent.destroy();
      return closeServer(server);
    },
  };
}
