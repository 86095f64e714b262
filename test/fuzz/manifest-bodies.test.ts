// Fuzzing manifest PUTs through the HTTP layer: at least 20,000 bodies a run, mutated from
// the real BuildKit cache fixture or generated, against an in-process regshim in front of
// the real registry. No crash, no unhandled rejection, no 5xx of regshim's own, and every
// body answered 201 reads back byte for byte by tag and by digest.
// FUZZ_SEED replays another seed, FUZZ_SCALE runs more (or fewer) cases.
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ALL_MANIFEST_TYPES, pushBlob } from '../support/blobs.js';
import { fixtureCache } from '../support/oci-archive.js';
import { type Blob, type Body, arbitraryBody, byteMutation, deepNesting, jsonMutation, storableCache, unknownBlobCache } from './bodies.js';
import { type Harness, explore, ownServerError, preview, sha256, startHarness } from './harness.js';

const REPO = 'fuzz/cache';
const BODIES = 20_000;

let h: Harness;
let fixtures: { bytes: Buffer; mediaType: string }[];
let layers: Blob[];
let config: Blob;

beforeAll(async () => {
  h = await startHarness();
  const index = await fixtureCache('index');
  const dlist = await fixtureCache('dlist');
  fixtures = [index, dlist];
  for (const blob of [...index.blobs.values(), ...dlist.blobs.values()]) await pushBlob(h.registry.url, REPO, blob);
  layers = [];
  for (let i = 0; i < 6; i++) {
    const blob = randomBytes(64 + i);
    layers.push({ digest: await pushBlob(h.registry.url, REPO, blob), size: blob.length });
  }
  const cfg = JSON.parse(index.bytes.toString('utf8')) as { manifests: { mediaType: string; digest: string; size: number }[] };
  const c = cfg.manifests.find((m) => m.mediaType === 'application/vnd.buildkit.cacheconfig.v0')!;
  config = { digest: c.digest, size: c.size };
});

afterAll(() => h?.stop());

type Ref = { kind: 'tag'; tag: string } | { kind: 'own digest' } | { kind: 'digest'; digest: string };

const ref: fc.Arbitrary<Ref> = fc.oneof(
  { weight: 8, arbitrary: fc.stringMatching(/^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,24}$/).map((tag) => ({ kind: 'tag' as const, tag })) },
  { weight: 2, arbitrary: fc.constant({ kind: 'own digest' as const }) },
  { weight: 1, arbitrary: fc.constantFrom(`sha256:${'0'.repeat(64)}`, `sha512:${'1'.repeat(128)}`, 'sha256:zz', `sha256:${'A'.repeat(64)}`).map((digest) => ({ kind: 'digest' as const, digest })) },
);

/** The reference to PUT at; tags get the case number, so cases running at once never share one. */
function reference(r: Ref, body: Body, caseNo: number): string {
  return r.kind === 'tag' ? `${r.tag}.${caseNo}` : r.kind === 'own digest' ? sha256(body.bytes) : r.digest;
}

it(`${BODIES} manifest bodies: no crash, no 5xx of regshim's own, every 201 reads back byte for byte`, { timeout: 600_000 }, async ({ annotate }) => {
  const bodies = fc.oneof(
    { weight: 45, arbitrary: jsonMutation(fixtures) },
    { weight: 35, arbitrary: byteMutation(fixtures) },
    { weight: 4, arbitrary: storableCache(layers, config) },
    { weight: 12, arbitrary: arbitraryBody() },
    { weight: 1, arbitrary: unknownBlobCache() },
    { weight: 1, arbitrary: deepNesting() },
  );
  const statuses = new Map<string, number>();
  const timing = new Map<string, { n: number; ms: number }>();
  const stored = { byTag: 0, byDigest: 0 };
  const { runs, report } = await explore({
    arb: fc.record({ body: bodies, ref }),
    numRuns: BODIES,
    concurrency: 16,
    describe: ({ body, ref: r }) => `${body.kind}, PUT ${reference(r, body, 0)}, content-type ${body.contentType ?? '(none)'}, body ${preview(body.bytes)}`,
    group: ({ body }) => body.kind.replace(/\(.*$/, ''),
    run: async ({ body, ref: r }, caseNo) => {
      const target = reference(r, body, caseNo);
      const started = performance.now();
      const put = await h.send('PUT', `/v2/${REPO}/manifests/${target}`, body.contentType === undefined ? {} : { 'content-type': body.contentType }, body.bytes);
      const family = body.kind.replace(/\(.*$/, '');
      statuses.set(`${family} ${put.status}`, (statuses.get(`${family} ${put.status}`) ?? 0) + 1);
      const t = timing.get(family) ?? { n: 0, ms: 0 };
      timing.set(family, { n: t.n + 1, ms: t.ms + performance.now() - started });
      if (h.escaped.length > 0) return `an error escaped: ${String(h.escaped.splice(0).map((e) => (e as Error).stack ?? e))}`;
      const own = ownServerError(put.status, put.body, put.upstream);
      if (own) return `PUT: ${own}: ${put.body.toString('utf8').slice(0, 300)}`;
      if (put.status !== 201) return undefined;
      const digest = sha256(body.bytes);
      if (put.headers['docker-content-digest'] !== digest) return `PUT 201 with Docker-Content-Digest ${String(put.headers['docker-content-digest'])}, not the body's ${digest}`;
      const reads = r.kind === 'tag' ? [['tag', target], ['digest', digest]] : [['digest', digest]];
      for (const [by, at] of reads) {
        const got = await h.send('GET', `/v2/${REPO}/manifests/${at}`, { accept: ALL_MANIFEST_TYPES });
        if (!got.body.equals(body.bytes) || got.headers['docker-content-digest'] !== digest) {
          return `201, then GET by ${by} answered ${got.status} with ${got.body.equals(body.bytes) ? 'the same bytes' : `other bytes (${preview(got.body, 120)})`} and digest ${String(got.headers['docker-content-digest'])}`;
        }
        stored[by === 'tag' ? 'byTag' : 'byDigest']++;
      }
      return undefined;
    },
  });
  const summary = [...statuses.entries()].sort().map(([k, n]) => `${k}: ${n}`).join(', ');
  const times = [...timing.entries()].map(([k, t]) => `${k}: ${t.n} runs, ${(t.ms / t.n).toFixed(1)} ms each`).join('; ');
  await annotate(`manifest bodies: ${runs} runs; read back ${stored.byTag} by tag, ${stored.byDigest} by digest\n${summary}\n${times}`);
  expect(runs).toBeGreaterThanOrEqual(BODIES * Number(process.env.FUZZ_SCALE ?? '1'));
  // Some of the bodies must have been stored, or the read-back proves nothing.
  expect(stored.byDigest).toBeGreaterThan(runs / 50);
  expect(report, report).toBe('');
});
