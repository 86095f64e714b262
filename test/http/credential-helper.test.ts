// A docker-credential helper named by a Docker config's credHelpers, for the upstream's
// host: run once for a cold burst, again when its credentials go stale.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthedUpstream, type UpstreamAuthKind, secretsOf, startAuthedUpstream } from '../support/auth-upstream.js';
import { Cleanup } from '../support/cleanup.js';
import { type RunningShim, startShim } from '../support/regshim.js';
import { type StubHelper, makeStubHelper } from '../support/stub-credential-helper.js';

describe.each<UpstreamAuthKind>(['token', 'basic'])('credential helper in front of %s auth', (kind) => {
  const cleanup = new Cleanup();
  let up: AuthedUpstream;
  let helper: StubHelper;
  let shim: RunningShim;
  let dir: string;
  let burst: Promise<number[]>;
  const savedPath = process.env.PATH;

  beforeAll(async () => {
    dir = await cleanup.tempDir('regshim-helper-');
    up = await cleanup.track(startAuthedUpstream(kind, dir));
    helper = await makeStubHelper(dir, { host: up.registry.host, username: up.username, password: up.password, delaySeconds: 0.5 });
    process.env.PATH = `${helper.binDir}:${savedPath}`;
    const configDir = join(dir, 'docker');
    await mkdir(configDir);
    // regshim's own name (127.0.0.1:<its port>) would be a different key: only the upstream's counts.
    await writeFile(join(configDir, 'config.json'), JSON.stringify({ credHelpers: { [up.registry.host]: helper.name } }));
    shim = await cleanup.track(startShim(up.registry.url, { dockerConfig: configDir }));
    // A cold burst of 50 requests, each for its own repository (own token scope), while the
    // startup check's helper run is still going.
    burst = Promise.all(Array.from({ length: 50 }, (_, i) => fetch(`${shim.url}/v2/cold/r${i}/tags/list`).then((r) => r.status)));
  });
  afterAll(async () => {
    process.env.PATH = savedPath;
    await cleanup.run();
  });

  /** The upstream and the helper move to a new password; what regshim holds goes stale. */
  async function rotatePassword(fresh: string): Promise<void> {
    if (kind === 'token') up.tokens!.users.set(up.username, fresh);
    else await writeFile(join(dir, 'upstream.htpasswd'), `${up.username}:${bcrypt.hashSync(fresh, 5)}\n`);
    await helper.setPassword(fresh);
    await sleep(2_100); // cached tokens outlive their 2 s; distribution re-reads a changed htpasswd
  }

  it('one cold burst of 50 requests runs the helper once, asked for the upstream host', async () => {
    const statuses = await burst;
    expect(statuses.filter((s) => s === 401 || s >= 500)).toEqual([]);
    expect(await helper.runs()).toEqual([up.registry.host]);
  });

  it('credentials that go stale: the helper runs again after a 401, and the client never sees it', async () => {
    await rotatePassword('pw-rotated-9e2b');
    const got = await fetch(`${shim.url}/v2/stale/app/manifests/latest`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } });
    expect(got.status).toBe(404);
    expect(await helper.runs()).toEqual([up.registry.host, up.registry.host]);
    if (kind === 'token') expect(up.tokens!.refused.length).toBe(1);
  });

  it('a streamed request without a body that gets a 401 is sent again with fresh credentials', async () => {
    await rotatePassword('pw-rotated-again-71c0');
    // Through the pass-through (tags/list): Basic gets the 401 from the registry itself.
    const got = await fetch(`${shim.url}/v2/stale/app/tags/list`);
    expect(got.status).toBe(404);
    expect(await helper.runs()).toHaveLength(3);
  });

  it('metrics count helper runs and token fetches', async () => {
    const metrics = await (await fetch(`${shim.url}/metrics`)).text();
    expect(metrics).toMatch(/regshim_credential_helper_runs_total\{result="ok"\} 3/);
    if (kind === 'token') expect(metrics).toMatch(/regshim_upstream_token_fetches_total\{result="rejected"\} 2/);
    else expect(metrics).toMatch(/^regshim_upstream_auth_rejections_total 2$/m);
  });

  it('a HEAD through the proxy (not the GET relay) that gets a 401 is sent again with fresh credentials', async () => {
    await rotatePassword('pw-rotated-head-3d91');
    const got = await fetch(`${shim.url}/v2/stale/app/blobs/sha256:${'0'.repeat(64)}`, { method: 'HEAD' });
    expect(got.status).toBe(404);
    expect(await helper.runs()).toHaveLength(4);
  });

  it('no log line holds a password, its base64 form or a token', () => {
    const text = JSON.stringify(shim.logs);
    for (const secret of [...secretsOf(up), 'pw-rotated-9e2b', 'pw-rotated-again-71c0', 'pw-rotated-head-3d91']) expect(text).not.toContain(secret);
  });
});

describe('other credential sources', () => {
  const cleanup = new Cleanup();
  afterAll(() => cleanup.run());

  it('an identity token from config.json auths is exchanged at the realm (OAuth2 refresh_token), as ACR wants', async () => {
    const dir = await cleanup.tempDir('regshim-idtoken-');
    const up = await cleanup.track(startAuthedUpstream('token', dir));
    up.tokens!.identityTokens.set('idtok-5f3a-unique', up.username);
    await mkdir(join(dir, 'docker'));
    await writeFile(join(dir, 'docker', 'config.json'), JSON.stringify({ auths: { [`https://${up.registry.host}`]: { identitytoken: 'idtok-5f3a-unique' } } }));
    const shim = await cleanup.track(startShim(up.registry.url, { dockerConfig: join(dir, 'docker') }));
    expect((await fetch(`${shim.url}/readyz`)).status).toBe(200);
    const res = await fetch(`${shim.url}/v2/acr/app/tags/list`);
    expect(res.status).toBe(404); // NAME_UNKNOWN: in, with a token for the scope
    expect(up.tokens!.issued.map((i) => `${i.grant} ${i.scopes.join(' ')}`)).toContain('refresh_token repository:acr/app:pull');
    expect(up.tokens!.issued.every((i) => i.grant === 'refresh_token')).toBe(true);
    expect(JSON.stringify(shim.logs)).not.toContain('idtok-5f3a-unique');
  });

  it.each<UpstreamAuthKind>(['token', 'basic'])('a password file is read again after a 401 (a rotated Secret), %s', async (kind) => {
    const dir = await cleanup.tempDir('regshim-pwfile-');
    const up = await cleanup.track(startAuthedUpstream(kind, dir));
    const file = join(dir, 'secret-password');
    await writeFile(file, `${up.password}\n`);
    const shim = await cleanup.track(startShim(up.registry.url, { upstreamUsername: up.username, upstreamPasswordFile: file }));
    expect((await fetch(`${shim.url}/v2/rot/app/tags/list`)).status).toBe(404);
    const fresh = 'pw-secret-rotated-0d4e';
    if (kind === 'token') up.tokens!.users.set(up.username, fresh);
    else await writeFile(join(dir, 'upstream.htpasswd'), `${up.username}:${bcrypt.hashSync(fresh, 5)}\n`);
    await writeFile(file, `${fresh}\n`);
    await sleep(2_100);
    // A pass-through request and one of regshim's own, both without a 401 to the client.
    expect((await fetch(`${shim.url}/v2/rot/app/tags/list`)).status).toBe(404);
    expect((await fetch(`${shim.url}/v2/rot/app/manifests/latest`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } })).status).toBe(404);
    expect(JSON.stringify(shim.logs)).not.toContain(fresh);
  });

  it('a helper that hangs is killed after --credential-helper-timeout: a clear 503, not a hang', async () => {
    const dir = await cleanup.tempDir('regshim-hang-');
    const up = await cleanup.track(startAuthedUpstream('basic', dir));
    const helper = await makeStubHelper(dir, { host: up.registry.host, username: up.username, password: up.password, delaySeconds: 30 });
    const savedPath = process.env.PATH;
    process.env.PATH = `${helper.binDir}:${savedPath}`;
    try {
      await mkdir(join(dir, 'docker'));
      await writeFile(join(dir, 'docker', 'config.json'), JSON.stringify({ credHelpers: { [up.registry.host]: helper.name } }));
      const shim = await cleanup.track(startShim(up.registry.url, { dockerConfig: join(dir, 'docker'), credentialHelperTimeout: '1' }));
      const started = performance.now();
      const res = await fetch(`${shim.url}/v2/team/app/tags/list`);
      expect(res.status).toBe(503);
      expect(((await res.json()) as { errors: { message: string }[] }).errors[0]?.message).toMatch(/docker-credential-regshimstub get for .* did not answer within 1 s/);
      expect(performance.now() - started).toBeLessThan(5_000);
      // Backing off: the next request fails at once, without another run.
      expect((await fetch(`${shim.url}/readyz`)).status).toBe(503);
      expect(await helper.runs()).toEqual([up.registry.host]);
    } finally {
      process.env.PATH = savedPath;
    }
  });
});
