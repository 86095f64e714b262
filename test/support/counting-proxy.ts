// An instrumented wire between regshim and the real registry: it forwards every request
// unchanged (Host too, so the registry's URLs name the wire) and records it, so tests can assert exact upstream request counts.
import http from 'node:http';
import { closeServer, listenOnLoopback } from './local-server.js';

export interface Recorded {
  method: string;
  path: string;
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body of a 5xx answer (the first 64 KiB), so tests can tell the registry's errors from regshim's. */
  errorBody?: Buffer;
}

export interface CountingProxy {
  url: string;
  /** Every request, in the order it arrived; status is 0 until the upstream answers. */
  requests: Recorded[];
  /** Connections opened to the wire so far (keep-alive reuses them). */
  connections(): number;
  /** The same, and how many are open now and at most (reset `peak` to measure a span). */
  sockets: { opened: number; open: number; peak: number };
  /** Requests being answered now, and at most at once. */
  inFlight: { now: number; peak: number };
  /** The requests recorded since the last reset, as "METHOD path" without the query. */
  take(): string[];
  stop(): Promise<void>;
}

export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const requests: Recorded[] = [];
  const agent = new http.Agent({ keepAlive: true });
  const targetUrl = new URL(target);
  const inFlight = { now: 0, peak: 0 };
  const server = http.createServer((req, res) => {
    const recorded: Recorded = { method: req.method ?? '', path: req.url ?? '', status: 0, headers: req.headers };
    requests.push(recorded);
    inFlight.peak = Math.max(inFlight.peak, ++inFlight.now);
    res.once('close', () => inFlight.now--);
    const up = http.request(
      { host: targetUrl.hostname, port: targetUrl.port, method: req.method, path: req.url, headers: req.headers, agent },
      (upRes) => {
        recorded.status = upRes.statusCode ?? 0;
        if (recorded.status >= 500) {
          const chunks: Buffer[] = [];
          upRes.on('data', (c: Buffer) => chunks.push(c));
          upRes.on('end', () => (recorded.errorBody = Buffer.concat(chunks).subarray(0, 65536)));
        }
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  const sockets = { opened: 0, open: 0, peak: 0 };
  server.on('connection', (socket) => {
    sockets.opened++;
    sockets.peak = Math.max(sockets.peak, ++sockets.open);
    socket.once('close', () => sockets.open--);
  });
  const port = await listenOnLoopback(server);
  let mark = 0;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    connections: () => sockets.opened,
    sockets,
    inFlight,
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
