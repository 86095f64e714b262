// inspect and doctor in front of registries that allow-list media types: the strict-gate
// SIMULATION's Quay and GitLab profiles (strict-profiles.ts) in front of distribution 2.8.
import { afterAll, describe, expect, it } from 'vitest';
import { OCI_INDEX } from '../../src/registry/media-types.js';
import { pushBlobs, putManifest } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { regshimCli } from '../support/cli.js';
import { fixtureCache } from '../support/oci-archive.js';
import { startRegistry } from '../support/registry.js';
import { startShimProcess } from '../support/regshim.js';
import { startStrictGate } from '../support/strict-gate.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run());

interface Probe {
  form: string;
  accepted: boolean;
  status: number;
  refusal: { code: string; message: string } | null;
  mediaTypes: string | null;
}

// What each profile stores of doctor's probes: Quay none of BuildKit's types; GitLab
// BuildKit's own forms (it lists the cacheconfig type), not regshim's index layer type.
const STORED: Record<'quay' | 'gitlab', [string, boolean][]> = {
  quay: [['regshim-buildkit', false], ['regshim-image', true], ['index', false], ['buildkit-image-manifest', false]],
  gitlab: [['regshim-buildkit', false], ['regshim-image', true], ['index', true], ['buildkit-image-manifest', true]],
};

describe.each<'quay' | 'gitlab'>(['quay', 'gitlab'])('the %s profile', (profile) => {
  it('doctor: regshim’s BuildKit form refused for its media types, quoted; auto chooses the image form; nothing left; exit 0', async () => {
    const registry = await cleanup.track(startRegistry());
    const gate = await cleanup.track(startStrictGate(registry.url, profile, { registryDataDir: registry.dataDir }));
    const r = await regshimCli(['doctor', '--upstream', gate.url, '--repository', `prof/${profile}`]);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { storedForm: string; cacheForm: string; findings: unknown[]; probes: { forms: Probe[]; leftovers: unknown[] } };
    expect(report.probes.forms.map((f) => [f.form, f.accepted])).toEqual(STORED[profile]);
    // Each refusal in the registry's words, as the gate wrote them (a long message shortened to 300 characters).
    const refused = report.probes.forms.filter((f) => !f.accepted);
    expect(refused.length).toBe(gate.reasons.length);
    refused.forEach((f, i) => expect(gate.reasons[i]).toContain(f.refusal?.message.replace(/…$/, '')));
    const own = report.probes.forms.find((f) => f.form === 'regshim-buildkit');
    if (profile === 'quay') expect(own?.refusal?.message).toMatch(/^manifest data does not match schema: 'application\/vnd\.buildkit\.cacheconfig\.v0' is not one of \[/);
    // GitLab says which type in the error's detail: doctor gives it as the media-type reason.
    else expect(own).toMatchObject({ refusal: { code: 'MANIFEST_INVALID', message: 'manifest invalid' }, mediaTypes: 'manifest invalid: unknown media type: application/vnd.regshim.buildkit.cache.index.v1+json' });
    expect(report).toMatchObject({ cacheForm: 'auto', storedForm: 'regshim-image', findings: [] });
    expect(report.probes.leftovers).toEqual([]);
    const tags = (await (await fetch(`${registry.url}/v2/prof/${profile}/tags/list`)).json()) as { tags: string[] | null };
    expect(tags.tags ?? []).toEqual([]);
  });

  it('inspect: a cache pushed through regshim is stored in the image form, and a client gets the index; straight and through regshim; exit 0', async () => {
    const registry = await cleanup.track(startRegistry());
    const gate = await cleanup.track(startStrictGate(registry.url, profile, { registryDataDir: registry.dataDir }));
    const shim = await cleanup.track(startShimProcess(gate.url));
    const cache = await fixtureCache('index');
    await pushBlobs(shim.url, 'prof/app', cache.blobs.values());
    expect((await putManifest(shim.url, 'prof/app', 'cache', cache.bytes, OCI_INDEX)).status).toBe(201);
    for (const host of [gate.host, shim.host]) {
      const r = await regshimCli(['inspect', `${host}/prof/app:cache`, '--check-blobs']);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({
        ok: true,
        stored: { form: 'regshim-image' },
        served: { form: 'index', made: false, digest: cache.digest, size: cache.bytes.length },
        layers: 2,
        cacheBytes: 123 + 112 + 740,
        newestLayer: '2026-11-28T22:02:47.628276874Z',
        // BuildKit cannot read the image form without regshim.
        importedBy: { throughRegshim: ['0.8-0.11', '0.12+'], fromRegistry: [] },
        // The image config, the two layers, the cacheconfig and the pushed index.
        blobs: { checked: 5, missing: [], unchecked: [], records: { records: 4, losingLayers: 0 } },
        problems: [],
      });
    }
  });
});
