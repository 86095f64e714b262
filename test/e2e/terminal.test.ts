// What a person sees: inspect, doctor and the pretty request log in a real terminal (tmux),
// the screen captured and compared line for line, colors checked in its escapes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OCI_INDEX } from '../../src/registry/media-types.js';
import { pushBlobs, putManifest } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { bin } from '../support/cli.js';
import { type FixtureCache, fixtureCache } from '../support/oci-archive.js';
import { freePort } from '../support/processes.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { startShimProcess } from '../support/regshim.js';
import { startTerminal } from '../support/tmux.js';
import { toImageManifest } from '../../src/cache/convert.js';
import { classifyManifest } from '../../src/cache/detect.js';
import { DEFAULT_INDEX_LAYER_MEDIA_TYPE } from '../../src/registry/media-types.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run());

// The terminal's environment: no REGSHIM_* of the runner's, colors allowed.
const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGSHIM_') && k !== 'NO_COLOR' && k !== 'TMUX'));
const GREEN = '\u001b[32m';
const regshim = (args: string) => `${process.execPath} ${bin} ${args}; echo "[exit $?]"`;

let registry: Registry;
let cache: FixtureCache;
beforeAll(async () => {
  registry = await cleanup.track(startRegistry());
  cache = await fixtureCache('index');
});

describe('on a terminal', () => {
  it('inspect prints the report for a person, colored, and exits 0', async () => {
    const shim = await cleanup.track(startShimProcess(registry.url));
    await pushBlobs(shim.url, 'term/app', cache.blobs.values());
    expect((await putManifest(shim.url, 'term/app', 'cache', cache.bytes, OCI_INDEX)).status).toBe(201);
    const detection = classifyManifest(cache.bytes, undefined);
    if (detection.kind !== 'cache') throw new Error('fixture is not a cache');
    const stored = toImageManifest(detection.index, cache.bytes, DEFAULT_INDEX_LAYER_MEDIA_TYPE);
    const term = await cleanup.track(startTerminal(regshim(`inspect ${registry.host}/term/app:cache`), env));
    const screen = await term.waitFor(/\[exit \d+\]/, 'inspect to finish');
    const own = "regshim's BuildKit form (BuildKit's image manifest, the pushed bytes kept as its last layer)";
    expect(screen).toBe(
      [
        'term/app:cache: whole and importable',
        `  stored upstream   ${own}`,
        `                    ${stored.digest}, ${(stored.bytes.length / 1024).toFixed(1)} KiB`,
        '  a client gets     BuildKit index (OCI)',
        `                    ${cache.digest}, ${cache.bytes.length} B`,
        '  layers            2 and the cacheconfig, 975 B in all',
        '  newest layer      2026-11-28T22:02:47.628276874Z',
        '  BuildKit imports  through regshim: 0.8-0.11, 0.12+',
        '                    from the registry directly: 0.12+',
        '  problems          none',
        '[exit 0]',
      ].join('\n'),
    );
    expect(await term.screenWithColors()).toContain(`${GREEN}whole and importable`);
  });

  it('doctor prints its checks for a person, colored, and exits 0', async () => {
    const term = await cleanup.track(startTerminal(regshim(`doctor --upstream ${registry.url} --repository term/doctor`), env));
    const screen = await term.waitFor(/\[exit \d+\]/, 'doctor to finish');
    expect(screen).toBe(
      [
        `${registry.url} (term/doctor): regshim will work in front of it`,
        '  reachable       ok (GET /v2/ answered 200)',
        '  TLS             none (plain http)',
        '  auth challenge  none',
        '  credentials     none configured',
        '  pull            ok no credentials configured: requests go without',
        '  push            ok no credentials configured: requests go without',
        "  cache forms     accepted regshim's BuildKit form (BuildKit's image manifest, the pushed bytes kept as its last layer)",
        "                  accepted regshim's image form (an OCI image: the cache's layers, its cacheconfig and the pushed bytes)",
        '                  accepted BuildKit index (OCI)',
        '                  accepted BuildKit image manifest (image-manifest=true)',
        '  clean-up        nothing left behind',
        '  regshim stores  regshim-buildkit (--cache-form auto)',
        '[exit 0]',
      ].join('\n'),
    );
    expect(await term.screenWithColors()).toContain(`${GREEN}regshim will work in front of it`);
  });

  it('serve logs one readable, colored line per request, with what regshim did', async () => {
    const port = await freePort();
    const term = await cleanup.track(startTerminal(`${process.execPath} ${bin} --upstream ${registry.url} --listen 127.0.0.1:${port}`, env));
    await term.waitFor(/INFO: listening/, 'regshim to listen');
    const url = `http://127.0.0.1:${port}`;
    await pushBlobs(url, 'term/log', cache.blobs.values());
    expect((await putManifest(url, 'term/log', 'cache', cache.bytes, OCI_INDEX)).status).toBe(201);
    const screen = await term.waitFor(/manifests\/cache 201/, 'the PUT line');
    const time = String.raw`\[\d\d:\d\d:\d\d\.\d{3}\]`;
    const ms = String.raw`[\d.]+ ms`;
    expect(screen).toMatch(new RegExp(String.raw`^${time} INFO: listening \{"url":"${url}","upstream":"${registry.url}"\}$`, 'm'));
    expect(screen).toMatch(new RegExp(String.raw`^${time} INFO: POST /v2/term/log/blobs/uploads/ 202 ${ms} \(upstream ${ms}\) passed-through$`, 'm'));
    expect(screen).toMatch(new RegExp(String.raw`^${time} INFO: cache index converted term/log:cache \{"indexDigest":"${cache.digest}","descriptors":3,"manifestDigest":"sha256:[0-9a-f]{64}","form":"buildkit","direction":"in"\}$`, 'm'));
    expect(screen).toMatch(new RegExp(String.raw`^${time} INFO: PUT /v2/term/log/manifests/cache 201 ${ms} \(upstream ${ms}\) converted$`, 'm'));
    // One line per request: the fields the message says are not repeated after it.
    expect(screen).not.toMatch(/"bytesOut"/);
    expect(await term.screenWithColors()).toMatch(new RegExp(`${GREEN.replace('[', '\\[')}201`));
  });
});
