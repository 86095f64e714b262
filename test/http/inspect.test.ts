// `regshim inspect`, the built CLI against the real registry (distribution 2.8), straight and
// through regshim, with and without upstream auth: each fact of the report, and the exit status.
import { writeFile } from 'node:fs/promises';
import bcrypt from 'bcryptjs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toImageManifest } from '../../src/cache/convert.js';
import { classifyManifest } from '../../src/cache/detect.js';
import { DEFAULT_INDEX_LAYER_MEDIA_TYPE, OCI_INDEX, OCI_MANIFEST } from '../../src/registry/media-types.js';
import { type AuthedUpstream, type UpstreamAuthKind, startAuthedUpstream } from '../support/auth-upstream.js';
import { pushBlobs, putManifest } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { regshimCli } from '../support/cli.js';
import { startCountingProxy } from '../support/counting-proxy.js';
import { type FixtureCache, fixtureCache } from '../support/oci-archive.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { startShimProcess } from '../support/regshim.js';
import { startStrictGate } from '../support/strict-gate.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run());

interface Report {
  schema: string;
  ok: boolean;
  reference: string;
  stored: { form: string; mediaType: string; digest: string; size: number };
  served: { form: string; mediaType: string; digest: string; size: number } | null;
  layers: number;
  cacheBytes: number;
  newestLayer: string | null;
  importedBy: { throughRegshim: string[]; fromRegistry: string[] };
  blobs: { checked: number; missing: string[]; unchecked: unknown[]; records: { records: number; losingLayers: number } | null } | null;
  problems: { code: string; severity: string; message: string }[];
  error?: string;
}

const parse = (stdout: string) => JSON.parse(stdout) as Report;
// The fixture: two layers (123 and 112 bytes), a cacheconfig of 740, four records.
const FIXTURE_BYTES = 123 + 112 + 740;
const NEWEST = '2026-11-28T22:02:47.628276874Z';

function storedManifest(cache: FixtureCache) {
  const detection = classifyManifest(cache.bytes, undefined);
  if (detection.kind !== 'cache') throw new Error('fixture is not a cache');
  return toImageManifest(detection.index, cache.bytes, DEFAULT_INDEX_LAYER_MEDIA_TYPE);
}

describe('regshim inspect against distribution 2.8', () => {
  let registry: Registry;
  let cache: FixtureCache;
  let shimUrl: string;
  beforeAll(async () => {
    registry = await cleanup.track(startRegistry());
    cache = await fixtureCache('index');
    const shim = await cleanup.track(startShimProcess(registry.url));
    shimUrl = shim.url;
    await pushBlobs(shim.url, 'insp/app', cache.blobs.values());
    expect((await putManifest(shim.url, 'insp/app', 'cache', cache.bytes, cache.mediaType)).status).toBe(201);
  });

  it.each([
    ['straight against the registry', () => `${registry.host}/insp/app:cache`],
    ['through regshim', () => `${new URL(shimUrl).host}/insp/app:cache`],
    ['by manifest URL (the older spelling)', () => `${registry.url}/v2/insp/app/manifests/cache`],
  ])('%s: both forms, their digests, sizes, newest layer, BuildKit versions; exit 0', async (_how, ref) => {
    const r = await regshimCli(['inspect', ref()]);
    expect(r.code, r.stderr).toBe(0);
    const report = parse(r.stdout); // stdout is a pipe: JSON without --json
    const manifest = storedManifest(cache);
    expect(report).toMatchObject({
      schema: 'regshim.inspect/v1',
      ok: true,
      reference: 'insp/app:cache',
      stored: { form: 'regshim-buildkit', mediaType: OCI_MANIFEST, digest: manifest.digest, size: manifest.bytes.length },
      served: { form: 'index', mediaType: OCI_INDEX, digest: cache.digest, size: cache.bytes.length },
      layers: 2,
      cacheBytes: FIXTURE_BYTES,
      newestLayer: NEWEST,
      importedBy: { throughRegshim: ['0.8-0.11', '0.12+'], fromRegistry: ['0.12+'] },
      blobs: null,
    });
    // regshim's own form warns of nothing: --cache-form auto moves to the image form where it is refused.
    expect(report.problems).toEqual([]);
  });

  it('an index stored as it is: one form, the warning that strict registries refuse it', async () => {
    await pushBlobs(registry.url, 'insp/plain', cache.blobs.values());
    expect((await putManifest(registry.url, 'insp/plain', 'cache', cache.bytes, cache.mediaType)).status).toBe(201);
    const r = await regshimCli(['inspect', '--json', `${registry.host}/insp/plain:cache`]);
    expect(r.code, r.stderr).toBe(0);
    const report = parse(r.stdout);
    expect(report.stored).toEqual({ form: 'index', label: 'BuildKit index (OCI)', made: false, mediaType: OCI_INDEX, digest: cache.digest, size: cache.bytes.length });
    expect(report.served?.digest).toBe(cache.digest);
    expect(report.importedBy).toEqual({ throughRegshim: ['0.8-0.11', '0.12+'], fromRegistry: ['0.8-0.11', '0.12+'] });
    expect(report.problems.map((p) => p.code)).toEqual(['REFUSED_BY_STRICT_REGISTRIES']);
  });

  it("BuildKit's image-manifest form: a client of regshim that names the OCI index gets the index regshim makes from it, which old BuildKit reads; exit 0", async () => {
    const img = await fixtureCache('imgmanifest');
    await pushBlobs(registry.url, 'insp/img', img.blobs.values());
    expect((await putManifest(registry.url, 'insp/img', 'cache', img.bytes, img.mediaType)).status).toBe(201);
    const r = await regshimCli(['inspect', `${registry.host}/insp/img:cache`]);
    expect(r.code, r.stderr).toBe(0);
    const report = parse(r.stdout);
    expect(report.stored).toMatchObject({ form: 'buildkit-image-manifest', made: false, digest: img.digest });
    const index = await fixtureCache('index');
    // BuildKit wrote both fixtures from one build: the made index is the index it wrote.
    expect(report.served).toMatchObject({ form: 'index', made: true, digest: index.digest, size: index.bytes.length });
    expect(report.importedBy).toEqual({ throughRegshim: ['0.8-0.11', '0.12+'], fromRegistry: ['0.12+'] });
    expect(report.problems.map((p) => p.code)).toEqual(['REFUSED_BY_ALLOW_LISTS']);
    const off = await regshimCli(['inspect', `${registry.host}/insp/img:cache`, '--image-manifest-as-index', 'off']);
    expect(parse(off.stdout).served).toMatchObject({ form: 'buildkit-image-manifest', made: false, digest: img.digest });
    expect(parse(off.stdout).problems.map((p) => p.code)).toEqual(['REFUSED_BY_ALLOW_LISTS', 'OLD_BUILDKIT_MISSES']);
  });

  it('--check-blobs on a whole cache: every blob present (layers, cacheconfig, index blob), exit 0', async () => {
    const r = await regshimCli(['inspect', '--check-blobs', `${registry.host}/insp/app:cache`]);
    expect(r.code, r.stderr).toBe(0);
    expect(parse(r.stdout).blobs).toEqual({ checked: 4, missing: [], unchecked: [], records: { records: 4, losingLayers: 0 } });
  });

  it('--check-blobs keeps to --blob-concurrency: one HEAD a blob, never more requests at once', async () => {
    const wire = await cleanup.track(startCountingProxy(registry.url));
    const r = await regshimCli(['inspect', '--check-blobs', '--blob-concurrency', '2', `${new URL(wire.url).host}/insp/app:cache`]);
    expect(r.code, r.stderr).toBe(0);
    expect(wire.requests.filter((q) => q.method === 'HEAD').length).toBe(4);
    // At most two at once (both at once is usual, not certain on a busy machine).
    expect(wire.inFlight.peak).toBeLessThanOrEqual(2);
  });

  it('--check-blobs on a cache whose layer was deleted: the missing digest named, the records that lose it counted, exit 1', async () => {
    await pushBlobs(shimUrl, 'insp/gc', cache.blobs.values());
    expect((await putManifest(shimUrl, 'insp/gc', 'cache', cache.bytes, cache.mediaType)).status).toBe(201);
    const layer = 'sha256:75b50b3c772e1cc802c22f7032778603210487f806bbb1d19418e273873e1bbe';
    expect((await fetch(`${registry.url}/v2/insp/gc/blobs/${layer}`, { method: 'DELETE' })).status).toBe(202);
    const without = await regshimCli(['inspect', `${registry.host}/insp/gc:cache`]);
    expect(without.code, 'without --check-blobs the damage is not seen').toBe(0);
    const r = await regshimCli(['inspect', '--check-blobs', `${registry.host}/insp/gc:cache`]);
    expect(r.code, r.stderr).toBe(1);
    const report = parse(r.stdout);
    expect(report.ok).toBe(false);
    expect(report.blobs).toEqual({ checked: 4, missing: [layer], unchecked: [], records: { records: 4, losingLayers: 1 } });
    expect(report.problems.find((p) => p.code === 'BLOBS_MISSING')).toMatchObject({ severity: 'error' });
  });

  it('a tag that is not there: exit 1, the registry’s own error quoted', async () => {
    const r = await regshimCli(['inspect', `${registry.host}/insp/app:nope`]);
    expect(r.code).toBe(1);
    expect(parse(r.stdout)).toMatchObject({ ok: false, reference: 'insp/app:nope', error: expect.stringMatching(/answered 404 MANIFEST_UNKNOWN: manifest unknown/) });
  });

  it('a registry that is not there: exit 1, the network’s reason named', async () => {
    const r = await regshimCli(['inspect', '127.0.0.1:9/insp/app:cache']);
    expect(r.code).toBe(1);
    expect(parse(r.stdout).error).toBe('the upstream registry http://127.0.0.1:9 cannot be reached (ECONNREFUSED)');
  });

  it.each([
    [['inspect', 'not a reference'], /is not a cache reference/],
    [['inspect', 'localhost:5000/app:cache', '--blob-concurrency', '0'], /--blob-concurrency "0" must be a positive whole number/],
    [['inspect'], /missing required argument 'ref'/],
  ])('bad usage %j: exit 2', async (args, message) => {
    const r = await regshimCli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});

describe('regshim inspect against a strict registry (SIMULATION gate in front of distribution 2.8)', () => {
  it('reads the stored form through the gate, straight and through regshim', async () => {
    const registry = await cleanup.track(startRegistry());
    const gate = await cleanup.track(startStrictGate(registry.url));
    const shim = await cleanup.track(startShimProcess(gate.url));
    const cache = await fixtureCache('index');
    await pushBlobs(shim.url, 'strict/app', cache.blobs.values());
    expect((await putManifest(shim.url, 'strict/app', 'cache', cache.bytes, cache.mediaType)).status).toBe(201);
    for (const host of [gate.host, shim.host]) {
      const r = await regshimCli(['inspect', `${host}/strict/app:cache`, '--check-blobs']);
      expect(r.code, r.stderr).toBe(0);
      expect(parse(r.stdout)).toMatchObject({ stored: { form: 'regshim-buildkit' }, served: { form: 'index', digest: cache.digest }, blobs: { missing: [] } });
    }
    expect(gate.refused).toEqual([]);
  });
});

describe.each<UpstreamAuthKind>(['basic', 'token'])('regshim inspect against a registry with %s auth', (kind) => {
  const local = new Cleanup();
  let up: AuthedUpstream;
  let passwordFile: string;
  let dir: string;
  beforeAll(async () => {
    dir = await local.tempDir('regshim-inspect-auth-');
    up = await local.track(startAuthedUpstream(kind, dir, 60));
    passwordFile = join(dir, 'password');
    await writeFile(passwordFile, `${up.password}\n`);
    const shim = await local.track(startShimProcess(up.registry.url, ['--upstream-username', up.username, '--upstream-password-file', passwordFile]));
    const cache = await fixtureCache('index');
    await pushBlobs(shim.url, 'auth/app', cache.blobs.values());
    expect((await putManifest(shim.url, 'auth/app', 'cache', cache.bytes, cache.mediaType)).status).toBe(201);
  });
  afterAll(() => local.run());

  it('with --upstream-username and --upstream-password-file: the report, exit 0', async () => {
    const r = await regshimCli(['inspect', `${up.registry.host}/auth/app:cache`, '--check-blobs', '--upstream-username', up.username, '--upstream-password-file', passwordFile]);
    expect(r.code, r.stderr).toBe(0);
    expect(parse(r.stdout)).toMatchObject({ ok: true, stored: { form: 'regshim-buildkit' }, served: { form: 'index' }, blobs: { checked: 4, missing: [] } });
    expect(r.stdout + r.stderr).not.toContain(up.password);
  });

  it('with a Docker config (auths entry): the same', async () => {
    await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { [up.registry.host]: { auth: Buffer.from(`${up.username}:${up.password}`).toString('base64') } } }));
    const r = await regshimCli(['inspect', `${up.registry.host}/auth/app:cache`, '--docker-config', join(dir, 'config.json')]);
    expect(r.code, r.stderr).toBe(0);
    expect(parse(r.stdout).served?.form).toBe('index');
  });

  it('without credentials: exit 1, the 401 named', async () => {
    const r = await regshimCli(['inspect', `${up.registry.host}/auth/app:cache`]);
    expect(r.code).toBe(1);
    expect(parse(r.stdout).error).toMatch(/answered 401/);
  });
});

describe('regshim inspect through a regshim that wants its clients to log in (--auth-htpasswd)', () => {
  it('with the client’s username and password file: the report, exit 0; without: exit 1, the 401 named', async () => {
    const dir = await cleanup.tempDir('regshim-inspect-inbound-');
    const registry = await cleanup.track(startRegistry());
    await writeFile(join(dir, 'clients.htpasswd'), `ci:${bcrypt.hashSync('pw-inbound-7', 5)}\n`);
    await writeFile(join(dir, 'password'), 'pw-inbound-7\n');
    const shim = await cleanup.track(startShimProcess(registry.url, ['--auth-htpasswd', join(dir, 'clients.htpasswd')]));
    const cache = await fixtureCache('index');
    const login = { authorization: `Basic ${Buffer.from('ci:pw-inbound-7').toString('base64')}` };
    await pushBlobs(shim.url, 'inbound/app', cache.blobs.values(), login);
    expect((await putManifest(shim.url, 'inbound/app', 'cache', cache.bytes, cache.mediaType, login)).status).toBe(201);
    const r = await regshimCli(['inspect', `${shim.host}/inbound/app:cache`, '--check-blobs', '--upstream-username', 'ci', '--upstream-password-file', join(dir, 'password')]);
    expect(r.code, r.stderr).toBe(0);
    expect(parse(r.stdout)).toMatchObject({ stored: { form: 'regshim-buildkit' }, served: { digest: cache.digest }, blobs: { missing: [] } });
    const refused = await regshimCli(['inspect', `${shim.host}/inbound/app:cache`]);
    expect(refused.code).toBe(1);
    expect(parse(refused.stdout).error).toMatch(/answered 401 UNAUTHORIZED/);
  });
});
