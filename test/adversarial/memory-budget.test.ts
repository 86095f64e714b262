// The memory budget (src/memory-budget.ts) is an upper bound: regshim, started as users
// start it (the bin), is driven to every bound the budget sums at once, after a phase of
// mixed load: the digest map full, manifest bytes in flight at their bound, client
// connections at theirs (each with a head half sent), and a relayed download on every
// upstream connection with its client not reading. Its peak RSS stays under the sum. Small
// bounds keep the run short and the sum tight: 207-313 MiB against 331 in seventeen runs, and
// over the sum with the garbage terms left out or the in-flight bound raised eightfold
// without the sum knowing (docs/operations.md, Memory sizing).
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { memoryBudget } from '../../src/memory-budget.js';
import { MiB, peakRssBytes, repeatedBlob, streamRequest } from '../support/big-blob.js';
import { pushBlobs } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { bigIndex, slowPut } from '../support/manifest-load.js';
import { type FixtureCache, fixtureCache } from '../support/oci-archive.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { type ShimProcess, startShimProcess } from '../support/regshim.js';

const FLAGS = {
  cacheMaxBytes: '16MiB',
  maxManifestBytesInFlight: '32MiB',
  maxClientConnections: '320',
  upstreamConnections: '8',
};
const ARGS = [
  '--cache-max-bytes', FLAGS.cacheMaxBytes,
  '--max-manifest-bytes-in-flight', FLAGS.maxManifestBytesInFlight,
  '--max-client-connections', FLAGS.maxClientConnections,
  '--upstream-connections', FLAGS.upstreamConnections,
];
const REPO = 'budget/app';
/** Connections the test itself uses besides the held ones: fetch's kept-alive pool, the slow PUTs, the downloads. */
const WORKING_CONNECTIONS = 56;

const cleanup = new Cleanup();
let registry: Registry;
let shim: ShimProcess;
let index: FixtureCache;
let blobDigest: string;

beforeAll(async () => {
  registry = await cleanup.track(startRegistry());
  shim = await cleanup.track(startShimProcess(registry.url, ARGS));
  index = await fixtureCache('index');
  await pushBlobs(registry.url, REPO, index.blobs.values());
  blobDigest = await pushLargeBlob(64);
});

afterAll(() => cleanup.run());

/** A blob of `mib` MiB pushed straight to the registry (POST, then a streamed PUT). */
async function pushLargeBlob(mib: number): Promise<string> {
  const blob = repeatedBlob(MiB, mib);
  const post = await fetch(`${registry.url}/v2/${REPO}/blobs/uploads/`, { method: 'POST' });
  const location = new URL(post.headers.get('location') ?? '', registry.url);
  location.searchParams.set('digest', blob.digest);
  const put = await streamRequest(location.href, { method: 'PUT', headers: { 'content-length': blob.size, 'content-type': 'application/octet-stream' }, body: blob.stream() });
  if (put.status !== 201) throw new Error(`blob PUT: ${put.status} ${put.head}`);
  return blob.digest;
}

/** Runs `tasks` with at most `concurrency` at once. */
async function inParallel(concurrency: number, tasks: (() => Promise<unknown>)[]): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < tasks.length) await tasks[next++]!();
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
}

async function expectStatus(expected: number, pending: Promise<Response | number>): Promise<void> {
  const res = await pending;
  const status = typeof res === 'number' ? res : res.status;
  if (typeof res !== 'number') await res.arrayBuffer();
  expect(status).toBe(expected);
}

/** Small requests of every kind regshim answers: cache PUTs and GETs, blobs, errors, metrics. */
async function mixedLoad(rounds: number): Promise<void> {
  const cache = (i: number) => bigIndex(index.bytes, 2000, `mixed${i}-`);
  const blobs = [...index.blobs.keys()];
  const tasks = Array.from({ length: rounds }, (_, i) => async () => {
    const tag = `mixed${i}`;
    await expectStatus(201, fetch(`${shim.url}/v2/${REPO}/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' }, body: new Uint8Array(cache(i)) }));
    await expectStatus(200, fetch(`${shim.url}/v2/${REPO}/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } }));
    await expectStatus(200, fetch(`${shim.url}/v2/${REPO}/manifests/${tag}`, { method: 'HEAD' }));
    await expectStatus(200, fetch(`${shim.url}/v2/${REPO}/blobs/${blobs[i % blobs.length]!}`));
    await expectStatus(404, fetch(`${shim.url}/v2/${REPO}/manifests/missing${i}`));
    await expectStatus(200, fetch(`${shim.url}/metrics`));
  });
  await inParallel(16, tasks);
}

/** Distinct caches of `bytes` each, `count` of them: they fill the digest map past its bound. */
async function fillDigestMap(name: string, count: number, bytes: number): Promise<void> {
  const tasks = Array.from({ length: count }, (_, i) => async () => {
    const body = bigIndex(index.bytes, bytes, `${name}${i}-`);
    await expectStatus(201, fetch(`${shim.url}/v2/${REPO}/manifests/${name}${i}`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' }, body: new Uint8Array(body) }));
  });
  await inParallel(8, tasks);
}

/** Connections that each sent most of a request head, up to --max-header-bytes, and wait. */
async function holdHalfSentHeads(count: number): Promise<net.Socket[]> {
  const { hostname, port } = new URL(shim.url);
  const head = `GET /v2/ HTTP/1.1\r\nHost: ${shim.host}\r\nX-Pad: ${'a'.repeat(15 * 1024)}`;
  const sockets: net.Socket[] = [];
  for (let i = 0; i < count; i++) {
    const socket = net.connect(Number(port), hostname);
    socket.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.write(head);
    sockets.push(socket);
  }
  return sockets;
}

/** Relayed downloads whose clients read nothing: each holds the relay's buffers in flight. */
async function stalledDownloads(count: number): Promise<http.ClientRequest[]> {
  return Promise.all(
    Array.from({ length: count }, () =>
      new Promise<http.ClientRequest>((resolve, reject) => {
        const req = http.get(`${shim.url}/v2/${REPO}/blobs/${blobDigest}`, { agent: false }, (res) => {
          expect(res.statusCode).toBe(200);
          res.pause();
          resolve(req);
        });
        req.on('error', reject);
      }),
    ),
  );
}

describe('the memory budget bounds a process driven to every bound at once', () => {
  it('peak RSS stays under the sum of the bounds, which /metrics shows', async () => {
    const budget = memoryBudget(parseConfig({ upstream: registry.url, ...FLAGS }));
    const metrics = await (await fetch(`${shim.url}/metrics`)).text();
    expect(metrics).toContain(`regshim_memory_budget_bytes ${budget.total}`);

    await mixedLoad(300);
    const connections = await holdHalfSentHeads(Number(FLAGS.maxClientConnections) - WORKING_CONNECTIONS);
    const downloads = await stalledDownloads(Number(FLAGS.upstreamConnections));
    try {
      // The map's bound is 16 MiB: 600 small caches (their bytes pin pool slabs), then 24 of
      // 600 KB, take it past that; then 4 MB PUTs hold the in-flight bound while it is full.
      await fillDigestMap('small', 600, 3000);
      await fillDigestMap('large', 24, 600 * 1000);
      const slow = await Promise.all(Array.from({ length: 12 }, (_, i) => slowPut(`${shim.url}/v2/${REPO}/manifests/slow${i}`, bigIndex(index.bytes, 4 * 1000 * 1000, `slow${i}-`))));
      expect(slow.filter((s) => s !== 201)).toEqual([]);
      // Still held at the end: the bounds were reached together, not one after another.
      expect(connections.filter((s) => s.destroyed)).toHaveLength(0);
      expect(downloads.filter((r) => r.destroyed)).toHaveLength(0);
      const peak = await peakRssBytes(shim.pid);
      process.stdout.write(`memory budget: peak ${(peak / MiB).toFixed(1)} MiB, sum ${(budget.total / MiB).toFixed(1)} MiB\n`);
      expect(peak).toBeLessThan(budget.total);
    } finally {
      for (const socket of connections) socket.destroy();
      for (const req of downloads) req.destroy();
    }
  }, 120_000);
});
