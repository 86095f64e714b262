// The modern BuildKit (0.13, dockerd 26 with buildx) with no credentials of its own exports
// and imports its registry cache through a regshim that holds the registry's: distribution
// 2.8 with htpasswd (Basic) and with token auth (the token-server simulation, 2-second tokens).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthedUpstream, type UpstreamAuthKind, secretsOf, startAuthedUpstream } from '../support/auth-upstream.js';
import { getManifest } from '../support/blobs.js';
import { ALL_STEPS, writeBuildContext } from '../support/build-context.js';
import { type Buildx, cachedStepNames, startBuildx, tiniStatic } from '../support/buildx.js';
import { Cleanup } from '../support/cleanup.js';
import { type RunningShim, startShim } from '../support/regshim.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

const cleanup = new Cleanup();
let bx: Buildx;
let ctx: string;
let workDir: string;

beforeAll(async () => {
  workDir = await cleanup.tempDir('regshim-e2e-buildx-auth-');
  bx = await cleanup.track(startBuildx('trixie'));
  ctx = await writeBuildContext(join(workDir, 'ctx'), tiniStatic());
});
afterAll(() => cleanup.run());

describe.each<UpstreamAuthKind>(['basic', 'token'])('BuildKit 0.13 without credentials, upstream with %s auth', (kind) => {
  let up: AuthedUpstream;
  let shim: RunningShim;

  beforeAll(async () => {
    const dir = await cleanup.tempDir(`regshim-e2e-buildx-auth-${kind}-`);
    up = await cleanup.track(startAuthedUpstream(kind, dir));
    shim = await cleanup.track(startShim(up.registry.url, { upstreamUsername: up.username, upstreamPassword: up.password, logLevel: 'debug' }));
  });

  it('exports the index-form cache through regshim and imports it with every step cached', async () => {
    const ref = `${shim.host}/team/app:cache`;
    await bx.forgetLocal();
    const exported = await bx.build(ctx, ['--cache-to', `type=registry,ref=${ref},mode=max`]);
    expect(exported.code, exported.stderr.slice(-3000)).toBe(0);
    // Stored upstream as an image manifest, which only regshim's credentials can read.
    expect((await getManifest(up.registry.url, 'team/app', 'cache', { accept: OCI_MANIFEST })).status).toBe(401);
    const exportLogs = shim.logs.filter((l) => l.msg === 'cache index converted');
    expect(exportLogs).toHaveLength(1);

    await bx.forgetLocal();
    const imported = await bx.build(ctx, ['--cache-from', `type=registry,ref=${ref}`]);
    expect(imported.code, imported.stderr.slice(-3000)).toBe(0);
    expect(cachedStepNames(imported.stderr)).toEqual(ALL_STEPS);
    // BuildKit never saw a challenge: every answer it got was regshim's, with credentials upstream.
    expect(shim.logs.filter((l) => l.msg === 'request' && l.status === 401)).toEqual([]);
  });

  it('the logs of the whole export and import, at debug, hold neither the password, nor its base64, nor a token', () => {
    expect(shim.logs.some((l) => l.level === 20)).toBe(true);
    const text = JSON.stringify(shim.logs);
    for (const secret of secretsOf(up)) expect(text).not.toContain(secret);
    if (up.tokens) expect(up.tokens.issued.length).toBeGreaterThan(0);
  });
});
