// regshim holding the registry's credentials: clients bring none, regshim authenticates
// every upstream request itself (Basic as ECR asks, Bearer tokens per scope as the rest
// do), never forwards a client's Authorization, and never logs a secret.
import { writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OCI_INDEX } from '../../src/registry/media-types.js';
import { type AuthedUpstream, type UpstreamAuthKind, secretsOf, startAuthedUpstream } from '../support/auth-upstream.js';
import { getManifest, pushBlob, pushBlobs, putManifest, sha256 } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { fixtureCache } from '../support/oci-archive.js';
import { type RunningShim, startShim } from '../support/regshim.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

describe.each<UpstreamAuthKind>(['basic', 'token'])('upstream with %s auth, credentials held by regshim', (kind) => {
  const cleanup = new Cleanup();
  let up: AuthedUpstream;
  let shim: RunningShim;

  beforeAll(async () => {
    const dir = await cleanup.tempDir('regshim-upauth-');
    up = await cleanup.track(startAuthedUpstream(kind, dir));
    const passwordFile = `${dir}/password`;
    await writeFile(passwordFile, `${up.password}\n`);
    shim = await cleanup.track(startShim(up.registry.url, { upstreamUsername: up.username, upstreamPasswordFile: passwordFile }));
  });
  afterAll(() => cleanup.run());

  it('the upstream refuses a client without credentials, regshim does not', async () => {
    expect((await fetch(`${up.registry.url}/v2/team/app/tags/list`)).status).toBe(401);
    const blob = Buffer.from(`layer for ${kind}`);
    const digest = await pushBlob(shim.url, 'team/app', blob);
    const got = await fetch(`${shim.url}/v2/team/app/blobs/${digest}`);
    expect(got.status).toBe(200);
    expect(Buffer.from(await got.arrayBuffer())).toEqual(blob);
  });

  it("a client's own Authorization is never forwarded", async () => {
    const got = await fetch(`${shim.url}/v2/team/app/tags/list`, { headers: { authorization: 'Basic Ym9ndXM6Ym9ndXM=' } });
    // Forwarded, the bogus credentials would get 404 NAME_UNKNOWN's opposite: a 401.
    expect(got.status).not.toBe(401);
  });

  it('cache PUT and GET: regshim’s own upstream calls carry its credentials', async () => {
    const cache = await fixtureCache('index');
    await pushBlobs(shim.url, 'team/cache', cache.blobs.values());
    const put = await putManifest(shim.url, 'team/cache', 'cache', cache.bytes, OCI_INDEX);
    expect(put.status).toBe(201);
    const got = await getManifest(shim.url, 'team/cache', 'cache');
    expect(got.status).toBe(200);
    expect(sha256(got.bytes)).toBe(cache.digest);
    const head = await getManifest(shim.url, 'team/cache', cache.digest, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect((await fetch(`${up.registry.url}/v2/team/cache/manifests/cache`, { headers: { accept: OCI_MANIFEST } })).status).toBe(401);
  });

  it('/readyz checks that the upstream accepts the credentials', async () => {
    expect((await fetch(`${shim.url}/readyz`)).status).toBe(200);
  });

  it.runIf(kind === 'token')('tokens are cached per scope and renewed before they expire; the client never sees a 401', async () => {
    const tokens = up.tokens!;
    const before = tokens.issued.length;
    const statuses = await Promise.all(Array.from({ length: 50 }, () => fetch(`${shim.url}/v2/burst/app/tags/list`).then((r) => r.status)));
    expect(statuses.filter((s) => s === 401)).toEqual([]);
    // One cold burst of 50 requests for one scope: one token fetch.
    expect(tokens.issued.slice(before).map((i) => i.scopes)).toEqual([['repository:burst/app:pull']]);
    // Past the token's life (2 s; the registry refuses it after that): a fresh one, no 401.
    await sleep(2_100);
    expect((await fetch(`${shim.url}/v2/burst/app/tags/list`)).status).not.toBe(401);
    expect(tokens.issued.slice(before).map((i) => i.scopes)).toEqual([['repository:burst/app:pull'], ['repository:burst/app:pull']]);
    // A cross-repository mount asks for pull on the source too.
    const digest = await pushBlob(shim.url, 'mount/src', Buffer.from('mounted'));
    const mount = await fetch(`${shim.url}/v2/mount/dst/blobs/uploads/?mount=${digest}&from=mount/src`, { method: 'POST' });
    expect(mount.status).toBe(201);
    expect(tokens.issued.at(-1)?.scopes).toEqual(['repository:mount/dst:pull,push', 'repository:mount/src:pull']);
  });

  it('no log line holds the password, its base64 form or a token', () => {
    const text = JSON.stringify(shim.logs);
    expect(shim.logs.length).toBeGreaterThan(10);
    for (const secret of secretsOf(up)) expect(text).not.toContain(secret);
  });
});
