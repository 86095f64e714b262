// Slow clients (slowloris, stalled bodies) and an upstream that dies during an upload: each
// connection ends promptly with an answer where one can still be given, never a hang.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cleanup } from '../support/cleanup.js';
import { type DyingUpstream, startDyingUpstream } from '../support/dying-upstream.js';
import { type FaultyUpstream, startFaultyUpstream } from '../support/faulty-upstream.js';
import { parseResponses, rawExchange } from '../support/raw-http.js';
import { type RunningShim, isHealthy, startShim } from '../support/regshim.js';

const STALL = '/v2/s/stall/blobs/uploads/u1';
const cleanup = new Cleanup();
let faulty: FaultyUpstream;
let dying: DyingUpstream;
let slow: RunningShim;
let overDying: RunningShim;

beforeAll(async () => {
  faulty = await cleanup.track(startFaultyUpstream({ [STALL]: 'silent' }));
  dying = await cleanup.track(startDyingUpstream());
  slow = await cleanup.track(startShim(faulty.url, { clientHeaderTimeout: '1', clientIdleTimeout: '1' }));
  // Long client timeouts: only regshim's handling of the upstream's death may end the upload.
  overDying = await cleanup.track(startShim(dying.url, { clientIdleTimeout: '60' }));
});

afterAll(() => cleanup.run());

describe('slow clients', () => {
  it('a head trickled a byte at a time (slowloris) is cut after --client-header-timeout', async () => {
    const head = 'GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(200);
    const res = await rawExchange(slow.url, [...head], { gapMs: 50, waitMs: 8000 });
    expect(res.closed).toBe(true);
    expect(res.elapsedMs).toBeLessThan(5000);
    expect(parseResponses(res.bytes).map((r) => r.status)).toEqual([408]);
    expect(await isHealthy(slow.url)).toBe(true);
  });

  it('a body that stalls is cut after --client-idle-timeout, and the upstream request with it', async () => {
    const arrival = faulty.arrival(STALL);
    const res = await rawExchange(slow.url, [
      `PATCH ${STALL} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n`,
      'only the start',
    ], { waitMs: 8000 });
    expect(res.closed).toBe(true);
    expect(res.elapsedMs).toBeLessThan(5000);
    await (await arrival).closed;
  });
});

describe('an upstream that dies during an upload', () => {
  it('answers 502 with Connection: close and ends the connection while the client is still writing', async () => {
    const { port } = new URL(overDying.url);
    const socket = net.connect(Number(port), '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now())));
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('PATCH /v2/d/up/blobs/uploads/u2 HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1073741824\r\n\r\n');
    // Keep writing, as a client with a big layer does, until the connection ends.
    const chunk = Buffer.alloc(64 * 1024, 1);
    let writing = true;
    void closed.then(() => (writing = false));
    const writer = (async () => {
      while (writing && !socket.destroyed) {
        if (!socket.write(chunk)) await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const started = performance.now();
    const end = await closed;
    await writer;
    const [answer] = parseResponses(Buffer.concat(chunks));
    expect(answer?.status).toBe(502);
    expect(answer?.headers.connection).toBe('close');
    expect(JSON.parse(answer?.body.toString() ?? '{}').errors[0].code).toBe('UPSTREAM_UNREACHABLE');
    expect(end - started).toBeLessThan(5000);
    expect(dying.uploads).toBe(1);
    expect(await isHealthy(overDying.url)).toBe(true);
  });
});
