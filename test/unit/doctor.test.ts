// doctor's pure parts: the small cache it pushes, each form built from it, and the verdict
// from what it observed. No I/O.
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { sha256 } from '../../src/cache/convert.js';
import { classifyManifest } from '../../src/cache/detect.js';
import { type DoctorObservations, chooseStoredForm, doctorFacts, isWorkable, provenPush } from '../../src/doctor/facts.js';
import type { ProbeRun } from '../../src/doctor/probes.js';
import { makeSmallCache } from '../../src/doctor/small-cache.js';
import { knownForms, recognise } from '../../src/inspect/forms.js';
import { DEFAULT_INDEX_LAYER_MEDIA_TYPE } from '../../src/registry/media-types.js';

describe('the small cache', () => {
  const cache = makeSmallCache('0123456789ab', '2026-12-03T08:00:00Z');

  it('is a cache index naming its layer and cacheconfig by digest, as BuildKit writes one', () => {
    const detection = classifyManifest(cache.index, undefined);
    if (detection.kind !== 'cache') throw new Error('not a cache');
    expect(detection.index.layers.map((l) => l.digest)).toEqual([sha256(cache.layer)]);
    expect(detection.index.config.digest).toBe(sha256(cache.cacheconfig));
    expect(JSON.parse(cache.cacheconfig.toString('utf8'))).toMatchObject({ layers: [{ blob: sha256(cache.layer), parent: -1 }] });
  });

  it('its layer is a gzip tar whose one file holds the nonce: no digest shared with another run', () => {
    const tar = gunzipSync(cache.layer);
    expect(tar.length % 512).toBe(0);
    expect(tar.subarray(0, 14).toString('ascii')).toBe('regshim-doctor');
    expect(tar.subarray(512, 525).toString('ascii')).toBe('0123456789ab\n');
    expect(sha256(makeSmallCache('ba9876543210', '2026-12-03T08:00:00Z').layer)).not.toBe(sha256(cache.layer));
  });

  it('every form with a probe builds a body that is recognised as that form', () => {
    const probed = knownForms().filter((f) => f.probe);
    expect(probed.map((f) => f.id)).toEqual(['regshim-buildkit', 'regshim-image', 'index', 'buildkit-image-manifest']);
    for (const form of probed) {
      const built = form.probe!(cache, { indexMediaType: DEFAULT_INDEX_LAYER_MEDIA_TYPE });
      expect(recognise(built.manifest)?.form.id, form.id).toBe(form.id);
    }
  });
});

const ALL = ['regshim-buildkit', 'regshim-image', 'index', 'buildkit-image-manifest'];
/** Probes where these forms were accepted and the rest refused with `refusal` (400). */
const MEDIA_TYPE_REFUSAL = { code: 'MANIFEST_INVALID', message: 'manifest invalid' };
/** Probes where these forms were accepted and the rest refused with `refusal` (400), about media types unless `mediaTypes` is false. */
const accepted = (forms: string[], refusal = MEDIA_TYPE_REFUSAL, mediaTypes: string | false = 'manifest invalid: unknown media type: application/vnd.buildkit.cacheconfig.v0'): ProbeRun => ({
  upload: { ok: true, status: 201, refusal: undefined },
  results: ALL.map((form) => {
    const ok = forms.includes(form);
    return { form, label: form, accepted: ok, status: ok ? 201 : 400, refusal: ok ? undefined : refusal, mediaTypes: ok || mediaTypes === false ? undefined : mediaTypes };
  }),
  leftovers: [],
});

const healthy: DoctorObservations = {
  upstream: 'http://r',
  repository: 'team/app',
  cacheForm: 'auto',
  reach: { ok: true, status: 200, error: undefined },
  tls: undefined,
  challenge: { scheme: 'none', realm: undefined, service: undefined },
  credentials: { source: undefined, pull: { ok: true, detail: '' }, push: { ok: true, detail: '' } },
  probes: accepted(ALL),
  regshim: undefined,
};

describe('doctorFacts', () => {
  it('all well: no finding, regshim stores its own form, exit 0', () => {
    const report = doctorFacts(healthy);
    expect(report.findings).toEqual([]);
    expect(report.storedForm).toBe('regshim-buildkit');
    expect(isWorkable(report)).toBe(true);
  });

  it.each<[string, 'auto' | 'buildkit' | 'image', ProbeRun, string | undefined]>([
    ['auto, both accepted: BuildKit’s form', 'auto', accepted(ALL), 'regshim-buildkit'],
    ['auto, BuildKit’s refused for its media types (GitLab’s words): the image form', 'auto', accepted(['regshim-image', 'index']), 'regshim-image'],
    ['auto, BuildKit’s refused for another reason: none (auto would not switch)', 'auto', accepted(['regshim-image'], { code: 'DENIED', message: 'policy' }, false), undefined],
    ['buildkit, refused: none', 'buildkit', accepted(['regshim-image']), undefined],
    ['image: the image form even when BuildKit’s is accepted', 'image', accepted(ALL), 'regshim-image'],
    ['only forms regshim writes count', 'auto', accepted(['index', 'buildkit-image-manifest']), undefined],
  ])('chooseStoredForm: %s', (_what, mode, probes, want) => {
    expect(chooseStoredForm(mode, probes.results)).toBe(want);
  });

  it('a refusal whose reason is only in its detail (GitLab): the reason follows the registry’s words', () => {
    const report = doctorFacts({ ...healthy, cacheForm: 'buildkit', probes: accepted(['regshim-image']) });
    expect(report.findings[0]?.message).toContain('400 MANIFEST_INVALID: manifest invalid (manifest invalid: unknown media type: application/vnd.buildkit.cacheconfig.v0)');
  });

  it('with --cache-form auto and only the image form accepted for another reason: the fix says --cache-form image', () => {
    const report = doctorFacts({ ...healthy, probes: accepted(['regshim-image'], { code: 'DENIED', message: 'policy' }, false) });
    expect(report.findings).toEqual([expect.objectContaining({ check: 'stored-form', fix: expect.stringMatching(/--cache-form image/) })]);
  });

  it.each<[string, Partial<DoctorObservations>, string[]]>([
    ['unreachable', { reach: { ok: false, status: undefined, error: 'ECONNREFUSED' }, probes: undefined }, ['reach']],
    ['an untrusted certificate', { tls: { protocol: 'TLSv1.3', trusted: false, error: 'SELF_SIGNED', validTo: undefined } }, ['tls']],
    ['a challenge and no credentials', { challenge: { scheme: 'bearer', realm: 'http://t/token', service: 's' }, probes: undefined }, ['credentials']],
    ['no push token', { credentials: { source: 'x', pull: { ok: true, detail: '' }, push: { ok: false, detail: 'refused' } } }, ['push']],
    ['an upload refused', { probes: { upload: { ok: false, status: 403, refusal: { code: 'DENIED', message: 'no' } }, results: [], leftovers: [] } }, ['push']],
    ['no stored form accepted', { probes: accepted(['index']) }, ['stored-form']],
    ['a regshim that is not ready', { regshim: { url: 'http://s', reachable: true, version: '0.1.0', upstream: 'http://r', settings: {}, ready: false, readyDetail: 'GET /readyz answered 503' } }, ['regshim']],
  ])('%s: an error with a fix, exit 1', (_what, change, checks) => {
    const report = doctorFacts({ ...healthy, ...change });
    expect(report.findings.map((f) => f.check)).toEqual(checks);
    expect(report.findings.every((f) => f.fix.length > 0)).toBe(true);
    expect(isWorkable(report)).toBe(false);
  });

  it('a regshim in front of another registry: a warning', () => {
    const report = doctorFacts({ ...healthy, regshim: { url: 'http://s', reachable: true, version: '0.1.0', upstream: 'http://other', settings: {}, ready: true, readyDetail: 'it reaches its upstream' } });
    expect(report.findings).toEqual([expect.objectContaining({ check: 'regshim', severity: 'warning', message: expect.stringMatching(/fronts http:\/\/other, not http:\/\/r/) })]);
    expect(isWorkable(report)).toBe(true);
  });

  it('leftovers are warnings: regshim still works, exit 0', () => {
    const report = doctorFacts({ ...healthy, probes: { ...accepted(['regshim-buildkit']), leftovers: [{ what: 'blob sha256:x', status: 405, refusal: { code: 'UNSUPPORTED', message: 'The operation is unsupported.' } }] } });
    expect(report.findings).toEqual([expect.objectContaining({ check: 'cleanup', severity: 'warning', message: expect.stringMatching(/405 UNSUPPORTED/) })]);
    expect(isWorkable(report)).toBe(true);
  });
});

describe('provenPush', () => {
  const basic = { source: '--upstream-username', pull: { ok: true, detail: '' }, push: { ok: true, detail: 'Basic credentials' } };
  const refusedUpload: ProbeRun = { upload: { ok: false, status: 401, refusal: { code: 'UNAUTHORIZED', message: 'no' } }, results: [], leftovers: [] };

  it('a Basic header proves nothing: an upload the registry refused makes push fail', () => {
    expect(provenPush(basic, refusedUpload)).toEqual({ ok: false, detail: 'a blob upload answered 401 UNAUTHORIZED' });
    expect(provenPush(basic, accepted(ALL))).toEqual(basic.push);
  });

  it('read access refused: push was not tried, and is not ok', () => {
    const refused = { ...basic, pull: { ok: false, detail: 'GET /v2/team/app/tags/list answered 401' } };
    expect(provenPush(refused, undefined)).toEqual({ ok: false, detail: 'not tried: read access was refused (GET /v2/team/app/tags/list answered 401)' });
  });
});
