// The upstream agent reads every socket into one reused buffer. These tests pin down what that
// relies on: Node's HTTP client copies each body chunk out before the next read, so bodies
// arrive intact on keep-alive sockets, under back-pressure, side by side, and cut short.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReusedReadBufferAgent } from '../../src/passthrough/proxy.js';
import { closeServer, listenOnLoopback } from '../support/local-server.js';

const sha256 = (data: Buffer | Uint8Array): string => createHash('sha256').update(data).digest('hex');

describe('ReusedReadBufferAgent', () => {
  const bodies = new Map<string, Buffer>();
  let connections = 0;
  let server: http.Server;
  let port = 0;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const path = req.url ?? '/';
      if (path === '/empty') {
        res.writeHead(204).end();
        return;
      }
      if (path.startsWith('/cut/')) {
        // Promise more than is sent, then drop the connection.
        const body = bodies.get(path.slice('/cut'.length)) as Buffer;
        res.writeHead(200, { 'content-length': body.length * 2 });
        res.write(body, () => res.socket?.destroy());
        return;
      }
      const body = bodies.get(path);
      if (!body) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-length': body.length, 'x-sha256': sha256(body) });
      if (req.method === 'HEAD') res.end();
      else writeInPieces(res, body);
    });
    server.on('connection', () => connections++);
    port = await listenOnLoopback(server);
    for (const size of [1, 100, 65_535, 65_536, 65_537, 200_001, 3 * 1024 * 1024 + 7]) bodies.set(`/b${size}`, randomBytes(size));
  });

  afterAll(() => closeServer(server));

  const get = (agent: http.Agent, path: string, method = 'GET', slow = false) =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer; complete: boolean }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path, method, agent }, (res) => {
        const chunks: Buffer[] = [];
        const finish = () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete: res.complete });
        res.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          if (slow) {
            // Hold the stream so the socket fills up and the parser pauses it.
            res.pause();
            setTimeout(() => res.resume(), 2);
          }
        });
        res.on('end', finish);
        res.on('aborted', finish);
        res.on('error', finish);
      });
      req.on('error', reject);
      req.end();
    });

  it('delivers every body intact over one keep-alive socket, HEAD and 204 in between', async () => {
    const agent = new ReusedReadBufferAgent({ keepAlive: true, maxSockets: 1 });
    const before = connections;
    for (let round = 0; round < 3; round++) {
      for (const [path, body] of bodies) {
        const got = await get(agent, path);
        expect([got.status, got.body.length, sha256(got.body)]).toEqual([200, body.length, sha256(body)]);
        const head = await get(agent, path, 'HEAD');
        expect([head.status, head.headers['content-length'], head.body.length]).toEqual([200, String(body.length), 0]);
        const empty = await get(agent, '/empty');
        expect([empty.status, empty.body.length]).toEqual([204, 0]);
      }
    }
    expect(connections - before).toBe(1);
    agent.destroy();
  });

  it('keeps bodies intact when the reader is slower than the socket (back-pressure)', async () => {
    const agent = new ReusedReadBufferAgent({ keepAlive: true, maxSockets: 1 });
    const body = bodies.get(`/b${3 * 1024 * 1024 + 7}`) as Buffer;
    for (let i = 0; i < 2; i++) {
      const got = await get(agent, `/b${body.length}`, 'GET', true);
      expect([got.body.length, sha256(got.body)]).toEqual([body.length, sha256(body)]);
    }
    agent.destroy();
  });

  it('keeps concurrent bodies on separate sockets apart', async () => {
    const agent = new ReusedReadBufferAgent({ keepAlive: true, maxSockets: 4 });
    const paths = [...bodies.keys()];
    const results = await Promise.all([...paths, ...paths].map((path) => get(agent, path)));
    results.forEach((got, i) => {
      const body = bodies.get(paths[i % paths.length] as string) as Buffer;
      expect(sha256(got.body)).toBe(sha256(body));
    });
    agent.destroy();
  });

  it('reports a body cut short by the upstream as incomplete, and the agent goes on working', async () => {
    const agent = new ReusedReadBufferAgent({ keepAlive: true, maxSockets: 1 });
    const body = bodies.get('/b200001') as Buffer;
    const cut = await get(agent, '/cut/b200001');
    expect(cut.complete).toBe(false);
    expect(cut.body.equals(body.subarray(0, cut.body.length))).toBe(true);
    const next = await get(agent, '/b200001');
    expect(sha256(next.body)).toBe(sha256(body));
    agent.destroy();
  });
});

/** Several writes of odd sizes, so reads straddle chunk boundaries. */
function writeInPieces(res: http.ServerResponse, body: Buffer): void {
  let offset = 0;
  let piece = 7;
  const next = (): void => {
    while (offset < body.length) {
      const end = Math.min(body.length, offset + piece);
      piece = (piece * 31 + 17) % 150_000 + 1;
      const more = res.write(body.subarray(offset, end));
      offset = end;
      if (!more) {
        res.once('drain', next);
        return;
      }
    }
    res.end();
  };
  next();
}
