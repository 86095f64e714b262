// Faults the real registry cannot produce on cue, against a simulated upstream
// (test/support/faulty-upstream.ts), and an upstream that is not there at all.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FaultyUpstream, startFaultyUpstream } from '../support/faulty-upstream.js';
import { Cleanup } from '../support/cleanup.js';
import { freePort, waitFor } from '../support/processes.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { type RunningShim, startShim } from '../support/regshim.js';

const DIES = '/v2/f/blobs/sha256:dies';
const SILENT = '/v2/f/blobs/sha256:silent';
const SILENT_MANIFEST = '/v2/f/manifests/silent';
const SILENT_MANIFESTS = '/v2/f/manifests/silent-*';

const cleanup = new Cleanup();
let faulty: FaultyUpstream;
let shim: RunningShim;

beforeAll(async () => {
  faulty = await cleanup.track(startFaultyUpstream({ [DIES]: 'die-mid-body', [SILENT]: 'silent', [SILENT_MANIFEST]: 'silent', [SILENT_MANIFESTS]: 'silent' }));
  shim = await cleanup.track(startShim(faulty.url, { upstreamTimeout: '0.5' }));
});

afterAll(() => cleanup.run());

describe('upstream faults', () => {
  it('ends the client response at once when the upstream dies mid-body', async () => {
    const started = performance.now();
    const outcome = await new Promise<string>((resolve) => {
      http.get(`${shim.url}${DIES}`, (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('end', () => resolve(`end after ${bytes}`));
        res.on('error', () => resolve(`error after ${bytes}`));
        res.on('aborted', () => resolve(`aborted after ${bytes}`));
      }).on('error', (e) => resolve(`request error ${e.message}`));
    });
    expect(outcome).toMatch(/^(error|aborted) after \d+$/);
    expect(Number(outcome.split(' ').pop())).toBeLessThan(1048576);
    // Well before the upstream timeout (0.5 s) or any client timeout.
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('answers 504 with OCI error JSON when the upstream is silent (blob path)', async () => {
    const res = await request(shim.url).get(SILENT).expect(504);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.body.errors[0].code).toBe('UPSTREAM_TIMEOUT');
  });

  it('answers 504 with OCI error JSON when the upstream is silent (manifest path)', async () => {
    const res = await request(shim.url).get(SILENT_MANIFEST).set('accept', 'application/vnd.oci.image.index.v1+json').expect(504);
    expect(res.body.errors[0].code).toBe('UPSTREAM_TIMEOUT');
  });

});

describe('a client that leaves first', () => {
  // A long upstream timeout, so only the guard can close the upstream request in time.
  let patient: RunningShim;
  beforeAll(async () => {
    patient = await cleanup.track(startShim(faulty.url, { upstreamTimeout: '30' }));
  });

  /** Sends GET target, waits until the upstream has it, leaves; resolves how long the upstream request outlived the client. */
  async function leaveAfterArrival(target: string, headers: Record<string, string> = {}): Promise<number> {
    const req = http.get(`${patient.url}${target}`, { headers });
    req.on('error', () => undefined);
    const seen = await faulty.arrival(target);
    const left = performance.now();
    req.destroy();
    // Without the guard the upstream request lives on until the 30 s timeout: give up at 3 s.
    const closedAt = await Promise.race([seen.closed, new Promise<number>((r) => setTimeout(() => r(Number.POSITIVE_INFINITY), 3_000))]);
    return closedAt - left;
  }

  it('cancels the upstream request of a pass-through (blob) request', async () => {
    // Guard: http-proxy-3 destroys the proxied request on res 'close' (web-incoming.js).
    expect(await leaveAfterArrival(`/v2/f/blobs/sha256:silent?id=${randomUUID()}`)).toBeLessThan(1_000);
  });

  it("cancels regshim's own upstream request (manifest)", async () => {
    // Guard: the AbortController in src/cache/exchange.ts call().
    expect(await leaveAfterArrival(`/v2/f/manifests/silent-${randomUUID()}`, { accept: 'application/vnd.oci.image.index.v1+json' })).toBeLessThan(1_000);
  });

  it('is logged with status 499 and its X-Request-Id', async () => {
    const id = `leaver-${randomUUID()}`;
    await leaveAfterArrival(`/v2/f/blobs/sha256:silent?id=${id}`, { 'x-request-id': id });
    await waitFor(async () => patient.logs.some((l) => l.reqId === id), { timeoutMs: 2_000, what: 'the log line of the request' });
    expect(patient.logs.find((l) => l.reqId === id)).toMatchObject({ msg: 'request', method: 'GET', status: 499 });
  });
});

describe('no upstream', () => {
  let lonely: RunningShim;
  beforeAll(async () => {
    lonely = await cleanup.track(startShim(`http://127.0.0.1:${await freePort()}`));
  });

  it.each([
    ['a blob', '/v2/x/blobs/sha256:abc', undefined],
    ['a manifest', '/v2/x/manifests/latest', 'application/vnd.oci.image.index.v1+json'],
  ])('answers 502 with OCI error JSON for %s', async (_what, path, accept) => {
    const res = await request(lonely.url).get(path).set('accept', accept ?? '*/*').expect(502);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.body.errors[0].code).toBe('UPSTREAM_UNREACHABLE');
  });

  it('is alive but not ready', async () => {
    await request(lonely.url).get('/healthz').expect(200);
    const res = await request(lonely.url).get('/readyz').expect(503);
    expect(res.body.errors[0].code).toBe('UNAVAILABLE');
  });
});

describe('client timeouts', () => {
  let registry: Registry;
  let idle: RunningShim;
  beforeAll(async () => {
    registry = await cleanup.track(startRegistry());
    idle = await cleanup.track(startShim(registry.url, { clientIdleTimeout: '1' }));
  });

  it('lets a slow upload run longer than the idle timeout as long as bytes keep coming', async () => {
    const post = await request(idle.url).post('/v2/slow/blobs/uploads/').expect(202);
    const started = performance.now();
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(new URL(post.headers.location as string), { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      let sent = 0;
      const tick = setInterval(() => {
        req.write(Buffer.alloc(1024, sent));
        if (++sent === 8) {
          clearInterval(tick);
          req.end();
        }
      }, 300);
    });
    expect(status).toBe(202);
    expect(performance.now() - started).toBeGreaterThan(2000);
  });

  it('closes a connection that goes idle', async () => {
    const closedAfter = await new Promise<number>((resolve) => {
      const started = performance.now();
      const req = http.request(`${idle.url}/v2/idle/blobs/uploads/`, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' } });
      req.on('error', () => resolve(performance.now() - started));
      req.on('response', (res) => res.on('close', () => resolve(performance.now() - started)));
      req.write('x');
    });
    expect(closedAfter).toBeGreaterThan(900);
    expect(closedAfter).toBeLessThan(5000);
  });

  it('lets an upload in flight finish when it is stopped, then refuses new connections', async () => {
    const stopping = await startShim(registry.url);
    const post = await request(stopping.url).post('/v2/drain/blobs/uploads/').expect(202);
    let closed: Promise<void> | undefined;
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(new URL(post.headers.location as string), { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      // Stop once regshim has the request and while its body is still coming; finish it afterwards.
      stopping.shim.server.once('request', () => {
        closed = stopping.stop();
        setTimeout(() => req.end(Buffer.alloc(1024, 2)), 200);
      });
      req.write(Buffer.alloc(1024, 1));
    });
    expect(status).toBe(202);
    await closed;
    await expect(fetch(`${stopping.url}/v2/`)).rejects.toThrow();
  });
});
