// Nobody else gets regshim's rights: clients log in (htpasswd, bcrypt) and reach only the
// allowed repositories; a refused request never reaches the upstream.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthedUpstream, basicAuth, secretsOf, startAuthedUpstream } from '../support/auth-upstream.js';
import { pushBlob } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { type CountingProxy, startCountingProxy } from '../support/counting-proxy.js';
import { type RunningShim, startShim } from '../support/regshim.js';

const CLIENT = 'ci';
const CLIENT_PASSWORD = 'client-pw-77aa-unique';

const cleanup = new Cleanup();
let up: AuthedUpstream;
let wire: CountingProxy;
let shim: RunningShim;

beforeAll(async () => {
  const dir = await cleanup.tempDir('regshim-access-');
  up = await cleanup.track(startAuthedUpstream('token', dir));
  wire = await cleanup.track(startCountingProxy(up.registry.url));
  const htpasswd = join(dir, 'clients.htpasswd');
  await writeFile(htpasswd, `${CLIENT}:${bcrypt.hashSync(CLIENT_PASSWORD, 10)}\n`);
  await writeFile(join(dir, 'pw'), up.password);
  shim = await cleanup.track(
    startShim(wire.url, {
      upstreamUsername: up.username,
      upstreamPasswordFile: join(dir, 'pw'),
      authHtpasswd: htpasswd,
      allowRepository: ['team/*', 'shared/**'],
    }),
  );
  // The startup check (GET /v2/ twice) is done once /readyz answers.
  expect((await fetch(`${shim.url}/readyz`)).status).toBe(200);
});
afterAll(() => cleanup.run());

describe('inbound authentication (--auth-htpasswd)', () => {
  it.each([
    ['no credentials', undefined],
    ['a wrong password', basicAuth(CLIENT, 'wrong')],
    ['an unknown user', basicAuth('nobody', CLIENT_PASSWORD)],
    ['a Bearer token', 'Bearer abc'],
  ])('%s: 401 with a Basic challenge for regshim, and the upstream sees nothing', async (_, authorization) => {
    wire.take();
    const headers: Record<string, string> = authorization ? { authorization } : {};
    for (const [method, path] of [['GET', '/v2/'], ['GET', '/v2/team/app/tags/list'], ['HEAD', '/v2/team/app/manifests/latest'], ['POST', '/v2/team/app/blobs/uploads/']] as const) {
      const res = await fetch(`${shim.url}${path}`, { method, headers });
      expect(res.status, `${method} ${path}`).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Basic realm="regshim"');
      if (method !== 'HEAD') expect(((await res.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('UNAUTHORIZED');
    }
    expect(wire.take()).toEqual([]);
  });

  it('a refused upload body is never read, and the connection is not reused', async () => {
    wire.take();
    const res = await fetch(`${shim.url}/v2/team/app/blobs/uploads/`, { method: 'POST', body: Buffer.alloc(1 << 20) });
    expect(res.status).toBe(401);
    expect(res.headers.get('connection')).toBe('close');
    expect(wire.take()).toEqual([]);
  });

  it('health, readiness and metrics stay open', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics']) expect((await fetch(`${shim.url}${path}`)).status, path).toBe(200);
  });

  it('a client that logs in reaches the upstream with regshim’s credentials, not its own', async () => {
    const authorization = basicAuth(CLIENT, CLIENT_PASSWORD);
    const digest = await pushBlob(shim.url, 'team/app', Buffer.from('through the gate'), { authorization });
    const got = await fetch(`${shim.url}/v2/team/app/blobs/${digest}`, { headers: { authorization } });
    expect(got.status).toBe(200);
  });
});

describe('--allow-repository', () => {
  const authorization = basicAuth(CLIENT, CLIENT_PASSWORD);

  it.each([
    ['GET', '/v2/other/app/tags/list'],
    ['HEAD', '/v2/team/a/b/manifests/latest'], // team/* is one level
    ['PUT', '/v2/other/app/manifests/latest'],
    ['POST', '/v2/team/app/blobs/uploads/?mount=sha256:0000000000000000000000000000000000000000000000000000000000000000&from=other/app'],
    ['GET', '/v2/_catalog'],
    ['GET', '/v2/Team/App/tags/list'], // outside the name grammar: no name to check
  ])('%s %s: DENIED before any upstream request', async (method, path) => {
    wire.take();
    const res = await fetch(`${shim.url}${path}`, { method, headers: { authorization } });
    expect(res.status).toBe(403);
    if (method !== 'HEAD') expect(((await res.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('DENIED');
    expect(wire.take()).toEqual([]);
  });

  it.each(['/v2/team/app/tags/list', '/v2/shared/deep/down/tags/list', '/v2/'])('%s is allowed', async (path) => {
    wire.take();
    const res = await fetch(`${shim.url}${path}`, { headers: { authorization } });
    expect([200, 404]).toContain(res.status);
    expect(wire.take()).toEqual([`GET ${path}`]);
  });

  it('the logs hold neither password', () => {
    const text = JSON.stringify(shim.logs);
    for (const secret of [...secretsOf(up), CLIENT_PASSWORD, Buffer.from(`${CLIENT}:${CLIENT_PASSWORD}`).toString('base64')]) expect(text).not.toContain(secret);
  });
});

describe('an upload refused upstream although it carried regshim’s credentials', () => {
  const local = new Cleanup();
  afterAll(() => local.run());

  it('passes the 401 back with regshim’s own challenge, so the client logs in to regshim again', async () => {
    const dir = await local.tempDir('regshim-access-stale-');
    const basicUp = await local.track(startAuthedUpstream('basic', dir));
    const htpasswd = join(dir, 'clients.htpasswd');
    await writeFile(htpasswd, `${CLIENT}:${bcrypt.hashSync(CLIENT_PASSWORD, 5)}\n`);
    const s = await local.track(startShim(basicUp.registry.url, { upstreamUsername: basicUp.username, upstreamPassword: basicUp.password, authHtpasswd: htpasswd }));
    const authorization = basicAuth(CLIENT, CLIENT_PASSWORD);
    const post = await fetch(`${s.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: { authorization } });
    expect(post.status).toBe(202);
    // The registry's password changes under regshim (a revoked key): the body cannot be replayed.
    await writeFile(join(dir, 'upstream.htpasswd'), `${basicUp.username}:${bcrypt.hashSync('changed-elsewhere', 5)}\n`);
    await new Promise((r) => setTimeout(r, 1_100)); // distribution re-reads a changed htpasswd by its mtime
    const patch = await fetch(new URL(String(post.headers.get('location')), s.url), { method: 'PATCH', headers: { authorization, 'content-type': 'application/octet-stream' }, body: Buffer.alloc(4096) });
    expect(patch.status).toBe(401);
    expect(patch.headers.get('www-authenticate')).toBe('Basic realm="regshim"');
  });
});
