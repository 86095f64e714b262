// The blob relay (src/passthrough/relay.ts) against a SIMULATED upstream that writes raw
// HTTP/1.1 bytes: every body framing a registry or what sits in front of it may use, keep-
// alive reuse, interim answers, malformed heads, back-pressure and a stale kept-alive socket.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cleanup } from '../support/cleanup.js';
import { type RunningShim, startShim } from '../support/regshim.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const body = randomBytes(3 * 1024 * 1024 + 7);
const BIG = 64 * 1024 * 1024;

function chunked(data: Buffer, size: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) {
    const piece = data.subarray(i, i + size);
    parts.push(Buffer.from(`${piece.length.toString(16)};ext=1\r\n`), piece, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from('0\r\nx-trailer: t\r\n\r\n'));
  return Buffer.concat(parts);
}

/** What the simulated upstream writes for each path, after reading a request head. */
const answers: Record<string, (socket: net.Socket) => void> = {
  '/v2/r/blobs/length': (s) => s.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nContent-Type: application/octet-stream\r\n\r\n`), body])),
  '/v2/r/blobs/chunked': (s) => s.write(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), chunked(body, 100_003)])),
  '/v2/r/blobs/until-close': (s) => s.end(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\n\r\n'), body])),
  '/v2/r/blobs/interim': (s) => s.write(`HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok`),
  '/v2/r/blobs/empty': (s) => s.write('HTTP/1.1 204 No Content\r\n\r\n'),
  '/v2/r/blobs/close': (s) => s.write('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok'),
  '/v2/r/blobs/garbage': (s) => s.write('HTTP/1.1 200 OK\r\nBad Header Line\r\n\r\n'),
  '/v2/r/blobs/smuggle': (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'),
  '/v2/r/blobs/redirect': (s) => s.write(`HTTP/1.1 307 Temporary Redirect\r\nLocation: ${upstreamUrl}/v2/r/blobs/length\r\nContent-Length: 0\r\n\r\n`),
  '/v2/r/blobs/big': (s) => {
    bigSocket = s;
    const piece = Buffer.alloc(1024 * 1024, 1);
    let sent = 0;
    s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${BIG}\r\n\r\n`);
    const pump = () => {
      while (sent < BIG) {
        sent += piece.length;
        bigWritten = sent;
        if (!s.write(piece)) return void s.once('drain', pump);
      }
    };
    pump();
  },
};

let upstreamUrl = '';
let connections = 0;
let bigWritten = 0;
let bigSocket: net.Socket | undefined;
/** Set: the next request on a connection that has served one before is dropped unanswered (a keep-alive race). */
let dropReused = false;
const sockets = new Set<net.Socket>();
const cleanup = new Cleanup();
let shim: RunningShim;

beforeAll(async () => {
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let pending = '';
    let served = 0;
    socket.on('data', (d: Buffer) => {
      if (dropReused && served > 0) {
        dropReused = false;
        socket.destroy();
        return;
      }
      pending += d.toString('latin1');
      for (let end = pending.indexOf('\r\n\r\n'); end !== -1; end = pending.indexOf('\r\n\r\n')) {
        const path = pending.slice(0, end).split(' ')[1] ?? '';
        pending = pending.slice(end + 4);
        served++;
        (answers[path] ?? ((s: net.Socket) => s.write('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n')))(socket);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  cleanup.track(Promise.resolve({ stop: () => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  }) }));
  shim = await cleanup.track(startShim(upstreamUrl));
});

afterAll(() => cleanup.run());

function get(path: string, agent?: http.Agent): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http.get(`${shim.url}${path}`, { agent: agent ?? false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

describe('blob relay', () => {
  it.each(['length', 'chunked', 'until-close'])('passes a %s-framed body intact', async (framing) => {
    const res = await get(`/v2/r/blobs/${framing}`);
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(body.length);
    expect(sha(res.body)).toBe(sha(body));
    expect(res.headers['x-trailer']).toBeUndefined();
    // A length-framed body keeps its Content-Length (clients check it); the others are re-chunked.
    expect(res.headers['content-length']).toBe(framing === 'length' ? String(body.length) : undefined);
  });

  it('reuses one upstream connection for answers that allow it, and not after Connection: close', async () => {
    await get('/v2/r/blobs/length');
    const before = connections;
    for (const path of ['length', 'chunked', 'empty', 'interim', 'length']) {
      const res = await get(`/v2/r/blobs/${path}`);
      expect(res.status, path).toBe(path === 'empty' ? 204 : 200);
    }
    expect(connections).toBe(before);
    expect((await get('/v2/r/blobs/close')).body.toString()).toBe('ok');
    expect((await get('/v2/r/blobs/length')).status).toBe(200);
    expect(connections).toBe(before + 1);
  });

  it('adds no listeners per request to a reused upstream socket', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    for (let i = 0; i < 20; i++) expect((await get('/v2/r/blobs/interim')).status).toBe(200);
    await new Promise((r) => setImmediate(r));
    process.off('warning', onWarning);
    expect(warnings).not.toContain('MaxListenersExceededWarning');
  });

  it('skips an interim 103 answer and relays the final one', async () => {
    const res = await get('/v2/r/blobs/interim');
    expect([res.status, res.body.toString()]).toEqual([200, 'ok']);
  });

  it.each(['garbage', 'smuggle'])('answers 502 with OCI error JSON for a malformed upstream answer (%s)', async (path) => {
    const res = await get(`/v2/r/blobs/${path}`);
    expect(res.status).toBe(502);
    expect(JSON.parse(res.body.toString()).errors[0].code).toBe('UPSTREAM_UNREACHABLE');
  });

  it('rewrites a Location that names the upstream', async () => {
    const res = await get('/v2/r/blobs/redirect');
    expect(res.status).toBe(307);
    expect(res.headers.location).toBe(`${shim.url}/v2/r/blobs/length`);
  });

  it('retries once on a new connection when a kept-alive one turns out closed', async () => {
    await get('/v2/r/blobs/length');
    // The upstream closes the kept-alive connection as the next request arrives on it.
    dropReused = true;
    const res = await get('/v2/r/blobs/length');
    expect(dropReused).toBe(false);
    expect(res.status).toBe(200);
    expect(sha(res.body)).toBe(sha(body));
  });

  it('cancels the upstream request when the client leaves mid-body', async () => {
    bigSocket = undefined;
    await new Promise<void>((resolve, reject) => {
      http.get(`${shim.url}/v2/r/blobs/big`, { agent: false }, (res) => {
        res.once('data', () => {
          res.destroy();
          resolve();
        });
        res.on('error', () => undefined);
      }).on('error', reject);
    });
    const socket = bigSocket as net.Socket | undefined;
    expect(socket).toBeDefined();
    const closed = socket!.destroyed || await new Promise<boolean>((resolve) => {
      socket!.once('close', () => resolve(true));
      setTimeout(() => resolve(false), 2000);
    });
    expect(closed).toBe(true);
  });

  it('holds the upstream back while the client does not read (back-pressure)', async () => {
    const received = await new Promise<number>((resolve, reject) => {
      http.get(`${shim.url}/v2/r/blobs/big`, { agent: false }, (res) => {
        let bytes = 0;
        res.on('data', (d: Buffer) => {
          bytes += d.length;
          if (bytes >= 1024 * 1024 && !res.isPaused()) {
            res.pause();
            // Long enough for an unbounded relay to take in all 64 MiB.
            setTimeout(() => {
              const written = bigWritten;
              res.destroy();
              resolve(written - bytes);
            }, 700);
          }
        });
        res.on('error', () => undefined);
      }).on('error', reject);
    });
    // Socket buffers on both sides hold a few MiB each; the relay itself at most 1 MiB.
    expect(received).toBeLessThan(24 * 1024 * 1024);
  });
});
