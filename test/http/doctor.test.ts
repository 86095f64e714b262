// `regshim doctor`, the built CLI against the real registry (distribution 2.8): plain, behind
// the strict-gate SIMULATION, with an image-only policy, without DELETE, behind token auth and
// htpasswd. Each report's facts, each exit status, and nothing left behind in the repository.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthedUpstream, type UpstreamAuthKind, startAuthedUpstream } from '../support/auth-upstream.js';
import { Cleanup } from '../support/cleanup.js';
import { regshimCli } from '../support/cli.js';
import { type CountingProxy, startCountingProxy } from '../support/counting-proxy.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { startShimProcess } from '../support/regshim.js';
import { startStrictGate } from '../support/strict-gate.js';
import { makeCertificate } from '../support/tls.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run());

interface Refusal {
  code: string;
  message: string;
}
interface Report {
  schema: string;
  ok: boolean;
  upstream: string;
  repository: string;
  reach: { ok: boolean; status: number | null; error: string | null };
  tls: unknown;
  challenge: { scheme: string; realm: string | null; service: string | null };
  credentials: { source: string | null; pull: { ok: boolean; detail: string }; push: { ok: boolean; detail: string } };
  probes: {
    upload: { ok: boolean; status: number; refusal: Refusal | null };
    forms: { form: string; label: string; accepted: boolean; status: number; refusal: Refusal | null }[];
    leftovers: { what: string; status: number; refusal: Refusal | null }[];
  } | null;
  storedForm: string | null;
  regshim: { url: string; reachable: boolean; version: string | null; upstream: string | null; settings: Record<string, unknown> | null; ready: boolean; readyDetail: string } | null;
  findings: { check: string; severity: string; message: string; fix: string }[];
}

const parse = (stdout: string) => JSON.parse(stdout) as Report;
const doctor = (upstream: string, repository: string, ...more: string[]) => regshimCli(['doctor', '--upstream', upstream, '--repository', repository, ...more]);
const formsOf = (r: Report) => r.probes?.forms.map((f) => [f.form, f.accepted]);

/** Every blob and manifest doctor wrote, from the wire: the digests of its uploads and its manifest PUTs' answers. */
function written(wire: CountingProxy) {
  const blobs = wire.requests.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/')).map((r) => new URL(r.path, 'http://x').searchParams.get('digest') ?? '');
  const tags = wire.requests.filter((r) => r.method === 'PUT' && r.path.includes('/manifests/')).map((r) => r.path.split('/manifests/')[1] ?? '');
  return { blobs, tags };
}

describe('regshim doctor against distribution 2.8', () => {
  let registry: Registry;
  beforeAll(async () => {
    registry = await cleanup.track(startRegistry());
  });

  it('every form accepted, regshim stores its own; exit 0; nothing left in the repository', async () => {
    const wire = await cleanup.track(startCountingProxy(registry.url));
    const r = await doctor(wire.url, 'doc/app');
    expect(r.code, r.stderr).toBe(0);
    const report = parse(r.stdout);
    expect(report).toMatchObject({
      schema: 'regshim.doctor/v1',
      ok: true,
      upstream: wire.url,
      repository: 'doc/app',
      reach: { ok: true, status: 200, error: null },
      tls: null,
      challenge: { scheme: 'none', realm: null, service: null },
      credentials: { source: null, pull: { ok: true }, push: { ok: true } },
      storedForm: 'regshim-buildkit',
      regshim: null,
      findings: [],
    });
    expect(formsOf(report)).toEqual([['regshim-buildkit', true], ['regshim-image', true], ['index', true], ['buildkit-image-manifest', true]]);
    expect(report.probes?.leftovers).toEqual([]);
    // What it wrote: the layer, the cacheconfig, the index blob, the image form's config; one manifest per form.
    const { blobs, tags } = written(wire);
    expect(blobs).toHaveLength(4);
    expect(tags).toHaveLength(4);
    for (const tag of tags) expect(tag).toMatch(/^regshim-doctor-[0-9a-f]{12}-(regshim-buildkit|index|buildkit-image-manifest|regshim-image)$/);
    // Nothing of it is left: no tag, no blob.
    const list = await fetch(`${registry.url}/v2/doc/app/tags/list`);
    expect(((await list.json()) as { tags: string[] | null }).tags ?? []).toEqual([]);
    for (const digest of blobs) expect((await fetch(`${registry.url}/v2/doc/app/blobs/${digest}`, { method: 'HEAD' })).status, digest).toBe(404);
  });

  it('a registry without DELETE: the leftovers named, as a warning; exit 0', async () => {
    const noDelete = await cleanup.track(startRegistry({ deleteDisabled: true }));
    const r = await doctor(noDelete.url, 'doc/kept');
    expect(r.code, r.stderr).toBe(0);
    const report = parse(r.stdout);
    // Four manifests, then four blobs: each DELETE refused with distribution's own words.
    const refused = (what: string) => [what, 405, 'UNSUPPORTED'];
    expect(report.probes?.leftovers.map((l) => [l.what.split(' ')[0], l.status, l.refusal?.code])).toEqual([
      ...Array.from({ length: 4 }, () => refused('manifest')),
      ...Array.from({ length: 4 }, () => refused('blob')),
    ]);
    expect(report.findings.map((f) => [f.check, f.severity])).toEqual(Array.from({ length: 8 }, () => ['cleanup', 'warning']));
  });

  it('an image-only policy refuses BuildKit’s config type but not as a media type: auto would not switch; exit 1, the refusal quoted, --cache-form image the fix', async () => {
    const strict = await cleanup.track(startRegistry({ policyImageOnly: true }));
    const r = await doctor(strict.url, 'doc/policy');
    expect(r.code).toBe(1);
    const report = parse(r.stdout);
    expect(report.storedForm).toBeNull();
    expect(formsOf(report)).toEqual([['regshim-buildkit', false], ['regshim-image', true], ['index', true], ['buildkit-image-manifest', false]]);
    expect(report.probes?.forms.find((f) => f.form === 'regshim-buildkit')).toMatchObject({ status: 403, refusal: { code: 'DENIED' } });
    expect(report.findings).toEqual([expect.objectContaining({ check: 'stored-form', severity: 'error', message: expect.stringMatching(/403 DENIED/), fix: expect.stringMatching(/--cache-form image/) })]);
    const image = await doctor(strict.url, 'doc/policy', '--cache-form', 'image');
    expect(image.code, image.stderr).toBe(0);
    expect(parse(image.stdout)).toMatchObject({ cacheForm: 'image', storedForm: 'regshim-image', findings: [] });
  });

  it('an unreachable registry: exit 1, what failed and what to do', async () => {
    const r = await doctor('http://127.0.0.1:9', 'doc/app');
    expect(r.code).toBe(1);
    const report = parse(r.stdout);
    expect(report.reach).toMatchObject({ ok: false, error: expect.stringMatching(/ECONNREFUSED/) });
    expect(report.probes).toBeNull();
    expect(report.findings[0]).toMatchObject({ check: 'reach', fix: expect.stringMatching(/DNS, proxy, firewall/) });
  });

  it('with --regshim: its version, settings and readiness', async () => {
    const shim = await cleanup.track(startShimProcess(registry.url));
    const r = await doctor(registry.url, 'doc/app', '--regshim', shim.url);
    expect(r.code, r.stderr).toBe(0);
    expect(parse(r.stdout).regshim).toMatchObject({ url: shim.url, reachable: true, version: '0.1.0', upstream: registry.url, ready: true, settings: { upstreamCredentials: false, workers: 1 } });
    const down = await doctor(registry.url, 'doc/app', '--regshim', 'http://127.0.0.1:9');
    expect(down.code).toBe(1);
    expect(parse(down.stdout).findings.map((f) => f.check)).toEqual(['regshim']);
  });

  it.each([
    [['doctor', '--upstream', 'http://127.0.0.1:9'], /required option '--repository <name>'/],
    [['doctor', '--repository', 'doc/app'], /--upstream is required/],
    [['doctor', '--upstream', 'http://127.0.0.1:9', '--repository', 'Not/Valid'], /--repository "Not\/Valid" must name a repository/],
  ])('bad usage %j: exit 2', async (args, message) => {
    const r = await regshimCli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});

describe('regshim doctor against a registry over https (self-signed certificate)', () => {
  it('without its CA: TLS untrusted, exit 1, --upstream-ca named; with it: the protocol and end date, exit 0', async () => {
    const dir = await cleanup.tempDir('regshim-doctor-tls-');
    const cert = await makeCertificate(dir);
    const registry = await cleanup.track(startRegistry({ tls: cert }));
    const untrusted = await doctor(registry.url, 'doc/tls');
    expect(untrusted.code).toBe(1);
    const bad = parse(untrusted.stdout);
    expect(bad.tls).toMatchObject({ trusted: false, error: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    expect(bad.findings.map((f) => f.check)).toEqual(['reach', 'tls']);
    expect(bad.findings[1]?.fix).toMatch(/--upstream-ca/);
    const trusted = await doctor(registry.url, 'doc/tls', '--upstream-ca', cert.certFile);
    expect(trusted.code, trusted.stderr).toBe(0);
    const good = parse(trusted.stdout);
    expect(good.tls).toMatchObject({ protocol: 'TLSv1.3', trusted: true, error: null, validTo: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
    expect(good.storedForm).toBe('regshim-buildkit');
    expect(good.probes?.leftovers).toEqual([]);
  });
});

describe('regshim doctor against a strict registry (SIMULATION gate in front of distribution 2.8)', () => {
  it('the index refused with the registry’s words; regshim’s form accepted; exit 0', async () => {
    const registry = await cleanup.track(startRegistry());
    const gate = await cleanup.track(startStrictGate(registry.url));
    const r = await doctor(gate.url, 'doc/strict');
    expect(r.code, r.stderr).toBe(0);
    const report = parse(r.stdout);
    expect(formsOf(report)).toEqual([['regshim-buildkit', true], ['regshim-image', true], ['index', false], ['buildkit-image-manifest', true]]);
    expect(report.probes?.forms.find((f) => f.form === 'index')).toMatchObject({
      status: 400,
      refusal: { code: 'MANIFEST_INVALID', message: 'Failed to parse manifest: Image index child manifest not supported: application/vnd.oci.image.layer.v1.tar+gzip.' },
    });
    expect(report.storedForm).toBe('regshim-buildkit');
    expect(report.probes?.leftovers).toEqual([]);
  });
});

describe.each<UpstreamAuthKind>(['basic', 'token'])('regshim doctor against a registry with %s auth', (kind) => {
  const local = new Cleanup();
  let up: AuthedUpstream;
  let dir: string;
  beforeAll(async () => {
    dir = await local.tempDir('regshim-doctor-auth-');
    up = await local.track(startAuthedUpstream(kind, dir, 60));
    await writeFile(join(dir, 'password'), `${up.password}\n`);
    await writeFile(join(dir, 'wrong'), 'not-the-password\n');
  });
  afterAll(() => local.run());

  it('with the credentials: the challenge, pull and push, every form; exit 0', async () => {
    const r = await doctor(up.registry.url, 'doc/auth', '--upstream-username', up.username, '--upstream-password-file', join(dir, 'password'));
    expect(r.code, r.stderr).toBe(0);
    const report = parse(r.stdout);
    expect(report.challenge.scheme).toBe(kind === 'basic' ? 'basic' : 'bearer');
    if (kind === 'token') expect(report.challenge).toMatchObject({ realm: up.tokens?.realm, service: up.tokens?.service });
    expect(report.credentials).toMatchObject({ source: '--upstream-username and --upstream-password-file', pull: { ok: true }, push: { ok: true } });
    if (kind === 'token') expect(report.credentials.push.detail).toBe('token for repository:doc/auth:pull,push');
    expect(report.storedForm).toBe('regshim-buildkit');
    expect(report.probes?.leftovers).toEqual([]);
    expect(r.stdout + r.stderr).not.toContain(up.password);
  });

  it('without credentials: exit 1, the challenge named and how to give them', async () => {
    const r = await doctor(up.registry.url, 'doc/auth');
    expect(r.code).toBe(1);
    const report = parse(r.stdout);
    expect(report.findings[0]).toMatchObject({ check: 'credentials', fix: expect.stringMatching(/--docker-config/) });
  });

  it('with a wrong password: exit 1, pull refused', async () => {
    const r = await doctor(up.registry.url, 'doc/auth', '--upstream-username', up.username, '--upstream-password-file', join(dir, 'wrong'));
    expect(r.code).toBe(1);
    const report = parse(r.stdout);
    expect(report.credentials.pull.ok).toBe(false);
    expect(report.findings.map((f) => f.check)).toContain('pull');
  });
});
