// SIMULATION, not a registry: an upstream that takes the start of an upload body and then
// drops the connection, the way a registry node that crashes mid-upload does.
import http from 'node:http';
import { closeServer, listenOnLoopback } from './local-server.js';

export interface DyingUpstream {
  url: string;
  /** Upload requests that reached it. */
  uploads: number;
  stop(): Promise<void>;
}

export async function startDyingUpstream(bytesBeforeDeath = 256 * 1024): Promise<DyingUpstream> {
  const state = { uploads: 0 };
  const server = http.createServer((req, res) => {
    if (req.method !== 'PATCH' && req.method !== 'PUT') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      return;
    }
    state.uploads++;
    let seen = 0;
    req.on('data', (chunk: Buffer) => {
      seen += chunk.length;
      if (seen >= bytesBeforeDeath) req.socket.destroy();
    });
  });
  const port = await listenOnLoopback(server);
  return {
    url: `http://127.0.0.1:${port}`,
    get uploads() {
      return state.uploads;
    },
    stop: () => closeServer(server),
  };
}
