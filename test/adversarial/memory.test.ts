// Memory under manifest load, measured on regshim as users start it (the bin): two waves of
// 40 slow 4 MB cache PUTs at once, each peaking under 300 MiB. The first shows the in-flight
// bound (without it, 580 MiB); the second, that a wave leaves garbage the next one reuses,
// not bodies that stay (160 MB of them would take it near 400). RSS at rest is not asserted:
// it holds whatever garbage the last collection left, until the next load collects it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MiB, peakRssBytes } from '../support/big-blob.js';
import { pushBlobs } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { bigIndex, resetPeak, slowPut } from '../support/manifest-load.js';
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

/** One wave: 40 slow cache PUTs at once, every one stored; the wave's peak RSS. */
async function wave(name: string): Promise<number> {
  await resetPeak(shim.pid);
  const bodies = Array.from({ length: 40 }, (_, i) => bigIndex(index.bytes, 4 * 1000 * 1000, `${name}${i}-`));
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
