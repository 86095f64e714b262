// Request-body chunks are freed as soon as they are written to the upstream
// (src/passthrough/release-written.ts): what that frees, what it leaves alone, and that the
// bytes still arrive intact.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releaseWrittenChunks } from '../../src/passthrough/release-written.js';
import { closeServer, listenOnLoopback } from '../support/local-server.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
let server: http.Server;
let port = 0;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const hash = createHash('sha256');
    req.on('data', (d: Buffer) => hash.update(d));
    req.on('end', () => res.end(hash.digest('hex')));
  });
  port = await listenOnLoopback(server);
});
afterAll(() => closeServer(server));

/** A PUT whose body `write` sends, with release on; resolves with the sha256 the server read. */
function put(write: (req: http.ClientRequest) => void): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'PUT', agent: false }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    releaseWrittenChunks(req);
    write(req);
  });
}

describe('releaseWrittenChunks', () => {
  it('frees each buffer that owns its memory once written, leaves shared memory alone, and the bytes arrive intact', async () => {
    const owned = [randomBytes(64 * 1024), randomBytes(200_000)].map((b) => Buffer.from(b)); // each its own ArrayBuffer
    const slab = randomBytes(128 * 1024);
    const view = slab.subarray(1000, 60_000); // shares its memory with `slab`
    const small = Buffer.from('tail'); // from Node's shared pool
    const expected = sha(Buffer.concat([...owned, view, small]));
    const answer = await put((req) => {
      for (const b of owned) req.write(b);
      req.write(view, () => undefined);
      req.end(small);
    });
    expect(answer).toBe(expected);
    expect(owned.map((b) => b.buffer.byteLength)).toEqual([0, 0]);
    expect([view.length, slab.length, small.toString()]).toEqual([59_000, 128 * 1024, 'tail']);
  });

  it('leaves buffers as they are, without failing, where ArrayBuffer has no transfer() (Node 20)', async () => {
    const transfer = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'transfer')!;
    delete (ArrayBuffer.prototype as { transfer?: unknown }).transfer;
    try {
      const chunk = Buffer.from(randomBytes(64 * 1024));
      const answer = await put((req) => {
        req.write(chunk);
        req.end();
      });
      expect(answer).toBe(sha(chunk));
      expect(chunk.length).toBe(64 * 1024); // not released: left to the garbage collector
    } finally {
      Object.defineProperty(ArrayBuffer.prototype, 'transfer', transfer);
    }
  });
});
