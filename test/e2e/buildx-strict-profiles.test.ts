// BuildKit caches through regshim to registries that allow-list media types: the Quay and
// GitLab SIMULATION profiles (test/support/strict-profiles.ts) in front of distribution 2.8.
// BuildKit 0.13's index export and BuildKit 0.25's default export (its own image-manifest
// form) go through regshim as users start it (`--cache-form auto`, the default), read back
// as pushed by tag and by digest on every replica, and import into BuildKit 0.8, 0.13 and
// 0.25 after a prune and the registry's garbage collection, through a fresh regshim. The
// controls: the exports straight to each profile, and through regshim in BuildKit's form
// (`--cache-form buildkit`, what regshim stored before the image form existed).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OCI_IMAGE_CONFIG, OCI_INDEX, OCI_MANIFEST } from '../../src/registry/media-types.js';
import { getManifest, sha256 } from '../support/blobs.js';
import { ALL_STEPS, OLD_HITS } from '../support/build-context.js';
import { exportedCacheDigest } from '../support/buildx.js';
import { type Builder, type CacheBed, startCacheBed } from '../support/cache-bed.js';
import { Cleanup } from '../support/cleanup.js';
import { type RunningShim, startShim, startShimProcess } from '../support/regshim.js';
import { type GateProfile, type StrictGate, startStrictGate } from '../support/strict-gate.js';

/** What BuildKit's cache resolver sends: it names an index. */
const RESOLVER_ACCEPT = `${OCI_MANIFEST}, ${OCI_INDEX}, */*`;

/** The two exports under test: who writes them, and the form they push. */
const EXPORTS = [
  { name: "BuildKit 0.13's index export", suite: 'trixie', mediaType: OCI_INDEX },
  { name: "BuildKit 0.25's default export", suite: 'forky', mediaType: OCI_MANIFEST },
] as const;
type Export = (typeof EXPORTS)[number];

/**
 * Which exports each profile refuses, straight and through regshim in BuildKit's form. Quay
 * refuses the cacheconfig (and an index of blobs); GitLab's table holds BuildKit's types
 * but not the type of regshim's index layer, which only the index export brings.
 */
const PROFILES: { profile: GateProfile; straight: Export['suite'][]; buildkitForm: Export['suite'][] }[] = [
  { profile: 'quay', straight: ['trixie', 'forky'], buildkitForm: ['trixie', 'forky'] },
  { profile: 'gitlab', straight: [], buildkitForm: ['trixie'] },
];

interface Profiled {
  gate: StrictGate;
  /** regshim with default flags in front of the gate. */
  shim: RunningShim;
}

const cleanup = new Cleanup();
let bed: CacheBed;
const builders = {} as Record<Export['suite'], Builder>;
const profiled = {} as Record<GateProfile, Profiled>;
/** The digest of what BuildKit pushed through regshim, by profile and export. */
const pushedDigest = new Map<string, string>();

beforeAll(async () => {
  bed = await startCacheBed(cleanup);
  for (const e of EXPORTS) builders[e.suite] = await bed.builder(e.suite);
  for (const { profile } of PROFILES) {
    const gate = await cleanup.track(startStrictGate(bed.registry.url, profile));
    profiled[profile] = { gate, shim: await cleanup.track(startShim(gate.url)) };
  }
});

afterAll(() => cleanup.run());

const tagOf = (e: Export) => `cache-${e.suite}`;

/**
 * The digest of what BuildKit pushed: the one it prints (0.25 does), else the one regshim
 * logged for the body of the PUT (0.13 prints none).
 */
function pushedDigestOf(stderr: string, shim: RunningShim, repo: string, tag: string): string | undefined {
  const logged = shim.logs.findLast((l) => l.msg === 'cache index converted' && l.direction === 'in' && l.repo === repo && l.ref === tag);
  return exportedCacheDigest(stderr) ?? (typeof logged?.indexDigest === 'string' ? logged.indexDigest : undefined);
}
const repoOf = (profile: GateProfile) => `${profile}/app`;
const refusedUnder = (gate: StrictGate, repo: string) => gate.refused.filter((p) => p.startsWith(`/v2/${repo}/`));

describe.each(PROFILES)('the $profile profile', ({ profile, straight, buildkitForm }) => {
  describe('the controls', () => {
    it.each(EXPORTS)('$name straight to the profile', async (e) => {
      const { gate } = profiled[profile];
      const exported = await builders[e.suite].exportCache(bed.ctx, `${gate.host}/control/app:${tagOf(e)}`);
      const refused = straight.includes(e.suite);
      expect(exported.code !== 0, exported.stderr).toBe(refused);
      expect(refusedUnder(gate, 'control/app')).toEqual(refused ? [`/v2/control/app/manifests/${tagOf(e)}`] : []);
      gate.refused.splice(0);
    });

    it.each(EXPORTS)('$name through regshim in BuildKit\'s form (--cache-form buildkit)', async (e) => {
      const { gate } = profiled[profile];
      const old = await cleanup.track(startShimProcess(gate.url, ['--cache-form', 'buildkit']));
      const exported = await builders[e.suite].exportCache(bed.ctx, `${old.host}/control/app:${tagOf(e)}`);
      const refused = buildkitForm.includes(e.suite);
      expect(exported.code !== 0, exported.stderr).toBe(refused);
      expect(refusedUnder(gate, 'control/app')).toEqual(refused ? [`/v2/control/app/manifests/${tagOf(e)}`] : []);
      gate.refused.splice(0);
    });
  });

  describe('through regshim (default flags)', () => {
    it.each(EXPORTS)('$name is stored as an image and read back as pushed, by tag and by digest', async (e) => {
      const { gate, shim } = profiled[profile];
      const repo = repoOf(profile);
      const exported = await builders[e.suite].exportCache(bed.ctx, `${shim.host}/${repo}:${tagOf(e)}`);
      expect(exported.code, exported.stderr).toBe(0);
      const digest = pushedDigestOf(exported.stderr, shim, repo, tagOf(e));
      expect(digest).toMatch(/^sha256:/);
      pushedDigest.set(`${profile} ${e.suite}`, digest ?? '');
      // The first export's PUT in BuildKit's form is refused once; from then on regshim writes the image form.
      expect(refusedUnder(gate, repo)).toEqual([`/v2/${repo}/manifests/${tagOf(EXPORTS[0])}`]);

      // A client that asks for the pushed type, with the wildcard (containerd's pusher) or alone.
      for (const accept of [`${e.mediaType}, */*`, e.mediaType]) {
        for (const ref of [tagOf(e), digest ?? '']) {
          const served = await getManifest(shim.url, repo, ref, { accept });
          const what = `GET ${ref === digest ? 'digest' : 'tag'} (${accept})`;
          expect([served.status, served.headers.get('content-type'), sha256(served.bytes), served.headers.get('docker-content-digest')], what).toEqual([
            200,
            e.mediaType,
            digest,
            digest,
          ]);
        }
      }

      // The registry holds an ordinary image: an OCI image config, which the profile accepts.
      const stored = await getManifest(bed.registry.url, repo, tagOf(e), { accept: OCI_MANIFEST });
      const manifest = JSON.parse(stored.bytes.toString('utf8')) as { mediaType: string; config: { mediaType: string } };
      expect([manifest.mediaType, manifest.config.mediaType]).toEqual([OCI_MANIFEST, OCI_IMAGE_CONFIG]);
    });

    it('two regshim processes with no shared state answer every tag and digest the same, byte for byte', async () => {
      const { gate, shim } = profiled[profile];
      const repo = repoOf(profile);
      const [one, two] = await Promise.all([cleanup.track(startShimProcess(gate.url)), cleanup.track(startShimProcess(gate.url))]);
      for (const e of EXPORTS) {
        const pushed = await getManifest(shim.url, repo, tagOf(e), { accept: `${e.mediaType}, */*` });
        expect(sha256(pushed.bytes), e.name).toBe(pushedDigest.get(`${profile} ${e.suite}`));
        const made = await getManifest(shim.url, repo, tagOf(e), { accept: RESOLVER_ACCEPT });
        const madeDigest = sha256(made.bytes);
        // Digests first: a replica that never read the tag must find them too.
        for (const ref of [sha256(pushed.bytes), madeDigest, tagOf(e)]) {
          for (const accept of [`${e.mediaType}, */*`, RESOLVER_ACCEPT]) {
            for (const method of ['GET', 'HEAD'] as const) {
              const what = `${e.name}: ${method} ${ref} (${accept})`;
              const [a, b] = await Promise.all([one, two].map((s) => getManifest(s.url, repo, ref, { method, accept })));
              const seen = [a, b].map((r) => [r?.status, r?.headers.get('content-type'), r?.headers.get('docker-content-digest'), sha256(r?.bytes ?? Buffer.alloc(0))]);
              expect(seen[1], what).toEqual(seen[0]);
              // Every ref answers a client that names its type; the made index's digest asked
              // without naming the index has no documented answer, only the same on both.
              if (ref !== madeDigest || accept.includes(OCI_INDEX)) expect(a?.status, what).toBe(200);
            }
          }
        }
        const again = await getManifest(two.url, repo, sha256(pushed.bytes), { accept: `${e.mediaType}, */*` });
        expect(again.bytes.equals(pushed.bytes), e.name).toBe(true);
      }
    });
  });
});

describe("after a prune and the registry's garbage collection, through a fresh regshim", () => {
  beforeAll(async () => {
    const gc = await bed.registry.collectGarbage();
    expect(gc.code, gc.stderr).toBe(0);
  });

  describe.each(PROFILES)('on the $profile profile', ({ profile }) => {
    it.each(EXPORTS)('$name: BuildKit 0.8 gets every COPY step cached, 0.13 and 0.25 every step', async (e) => {
      const fresh = await cleanup.track(startShimProcess(profiled[profile].gate.url));
      const ref = `${fresh.host}/${repoOf(profile)}:${tagOf(e)}`;
      expect(await bed.importByOld(ref), '0.8').toEqual(OLD_HITS);
      expect(await builders.trixie.importCached(bed.ctx, ref), '0.13').toEqual(ALL_STEPS);
      expect(await builders.forky.importCached(bed.ctx, ref), '0.25').toEqual(ALL_STEPS);
    });
  });
});
