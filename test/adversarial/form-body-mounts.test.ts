// A cross-repository mount must not carry another repository's blob past --allow-repository.
// Distribution reads `mount` and `from` with Go's FormValue, which parses a form body too:
// against a Basic upstream (htpasswd, as ECR) no token scope stops a mount regshim missed.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthedUpstream, basicAuth, startAuthedUpstream } from '../support/auth-upstream.js';
import { pushBlob } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { type CountingProxy, startCountingProxy } from '../support/counting-proxy.js';
import { type RunningShim, startShim } from '../support/regshim.js';

const authorization = basicAuth('ci', 'ci-pw-mounts');

const cleanup = new Cleanup();
let up: AuthedUpstream;
let wire: CountingProxy;
let shim: RunningShim;
/** A blob only in other/y, which the client may not reach; and one in team/z, which it may. */
let secret: string;
let shared: string;

beforeAll(async () => {
  const dir = await cleanup.tempDir('regshim-mounts-');
  up = await cleanup.track(startAuthedUpstream('basic', dir));
  wire = await cleanup.track(startCountingProxy(up.registry.url));
  const htpasswd = join(dir, 'clients.htpasswd');
  await writeFile(htpasswd, `ci:${bcrypt.hashSync('ci-pw-mounts', 5)}\n`);
  shim = await cleanup.track(startShim(wire.url, { upstreamUsername: up.username, upstreamPassword: up.password, authHtpasswd: htpasswd, allowRepository: ['team/*'] }));
  const upstreamAuth = { authorization: basicAuth(up.username, up.password) };
  secret = await pushBlob(up.registry.url, 'other/y', Buffer.from('other/y only: not for team'), upstreamAuth);
  shared = await pushBlob(up.registry.url, 'team/z', Buffer.from('team/z: fine to mount'), upstreamAuth);
});
afterAll(() => cleanup.run());

async function readable(repo: string, digest: string): Promise<number> {
  return (await fetch(`${shim.url}/v2/${repo}/blobs/${digest}`, { headers: { authorization } })).status;
}

describe('cross-repository mounts through an allow-list', () => {
  it('a mount from an allowed repository in the query works (the test can mount at all)', async () => {
    const res = await fetch(`${shim.url}/v2/team/x/blobs/uploads/?mount=${shared}&from=team/z`, { method: 'POST', headers: { authorization } });
    expect(res.status).toBe(201);
    expect(await readable('team/x', shared)).toBe(200);
  });

  it.each([
    ['a urlencoded body', () => ({ query: '', body: new URLSearchParams({ mount: secret, from: 'other/y' }) as BodyInit })],
    ['a urlencoded body, its type in capitals with a charset', () => ({ query: '', body: new URLSearchParams({ mount: secret, from: 'other/y' }).toString(), contentType: 'Application/X-WWW-Form-URLEncoded; charset=utf-8' })],
    ['a multipart body', () => ({ query: '', body: multipart({ mount: secret, from: 'other/y' }) })],
    ['a body that contradicts an allowed query', () => ({ query: `?mount=${secret}&from=team/z`, body: new URLSearchParams({ from: 'other/y' }) as BodyInit })],
  ])('%s: 400 before the upstream, and the blob stays out of team/x', async (_, make) => {
    const { query, body, contentType } = make() as { query: string; body: BodyInit; contentType?: string };
    wire.take();
    const res = await fetch(`${shim.url}/v2/team/x/blobs/uploads/${query}`, { method: 'POST', headers: { authorization, ...(contentType ? { 'content-type': contentType } : {}) }, body });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { errors: { code: string; message: string }[] }).errors[0]?.message).toMatch(/must not carry a form body/);
    expect(wire.take()).toEqual([]);
    expect(await readable('team/x', secret)).toBe(404);
  });

  it('a second `from` in the query is checked too (distribution takes the first it can decode)', async () => {
    wire.take();
    const res = await fetch(`${shim.url}/v2/team/x/blobs/uploads/?mount=${secret}&from=team/z&from=other/y`, { method: 'POST', headers: { authorization } });
    expect(res.status).toBe(403);
    expect(wire.take()).toEqual([]);
  });
});

function multipart(fields: Record<string, string>): FormData {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  return form;
}
