// Memory under manifest load, measured on regshim as users start it (the bin): two waves of
// 40 slow 4 MB cache PUTs at once, each peaking under 300 MiB. The first shows the in-flight
// bound (without it, 580 MiB); the second, that a wave leaves garbage the next one reuses,
// not bodies that stay (160 MB of them would take it near 400). RSS at rest is not asserted:
// it holds whatever garbage the last collection left, until the next load collects it.
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { goMarshal } from '../../src/cache/go-json.js';
import { MiB, peakRssBytes } from '../support/big-blob.js';
import { pushBlobs } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { type FixtureCache, fixtureCache } from '../support/oci-archive.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { type ShimProcess, startShimProcess } from '../support/regshim.js';

const cleanup = new Cleanup();
let registry: Registry;
let shim: ShimProcess;
let index: FixtureCache;

beforeAll(async () => {
  registry = await cleanup.track(startRegistry());
  shim = await cleanup.track(startShimProcess(registry.url));
  index = await fixtureCache('index');
  await pushBlobs(registry.url, 'mem/app', index.blobs.values());
});

afterAll(() => cleanup.run());

/** A valid cache index of about `bytes`, its layers repeated with padded annotations. */
function bigIndex(bytes: number, salt: string): Buffer {
  const doc = JSON.parse(index.bytes.toString()) as { manifests: { mediaType: string; annotations?: Record<string, string> }[] };
  const config = doc.manifests.at(-1)!;
  const layers = doc.manifests.slice(0, -1).map((l) => ({ ...l, annotations: { ...l.annotations, 'x.pad': `${salt}${'p'.repeat(2000)}` } }));
  const perLayer = Buffer.byteLength(JSON.stringify(layers[0]));
  const copies = Math.floor((bytes - 1000) / perLayer);
  doc.manifests = [...Array.from({ length: copies }, (_, i) => layers[i % layers.length]!), config];
  return Buffer.from(goMarshal(doc));
}

/** PUT in 64 KiB pieces over about two seconds. */
function slowPut(url: string, body: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.index.v1+json', 'content-length': body.length } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    let at = 0;
    const step = () => {
      if (at >= body.length) return void req.end();
      req.write(body.subarray(at, at + 64 * 1024));
      at += 64 * 1024;
      setTimeout(step, 30);
    };
    step();
  });
}

/** Starts a new peak (VmHWM) at the current RSS: proc(5), /proc/PID/clear_refs. */
async function resetPeak(pid: number): Promise<void> {
  await writeFile(`/proc/${pid}/clear_refs`, '5');
}

/** One wave: 40 slow cache PUTs at once, every one stored; the wave's peak RSS. */
async function wave(name: string): Promise<number> {
  await resetPeak(shim.pid);
  const bodies = Array.from({ length: 40 }, (_, i) => bigIndex(4 * 1000 * 1000, `${name}${i}-`));
  expect(bodies.every((b) => b.length <= 4 * MiB && b.length > 3.9 * 1000 * 1000)).toBe(true);
  const statuses = await Promise.all(bodies.map((b, i) => slowPut(`${shim.url}/v2/mem/app/manifests/${name}${i}`, b)));
  expect(statuses.filter((s) => s !== 201)).toEqual([]);
  const peak = await peakRssBytes(shim.pid);
  process.stdout.write(`memory: wave ${name}: peak ${(peak / MiB).toFixed(1)} MiB\n`);
  return peak / MiB;
}

describe('manifest bytes in flight are bounded, and nothing of a PUT stays', () => {
  it('two waves of 40 slow 4 MB cache PUTs: all stored, and each peaks under 300 MiB', async () => {
    expect(await wave('a')).toBeLessThan(300);
    expect(await wave('b')).toBeLessThan(300);
  }, 180_000);
});
