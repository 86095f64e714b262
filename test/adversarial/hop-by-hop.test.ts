// Hop-by-hop request headers (RFC 9110 section 7.6.1) stop at regshim on every path: the
// relayed blob GET, the proxied upload, a manifest PUT through the conversion path.
// Proxy-Authorization above all: a credential meant for a proxy, not for the registry.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushBlob, sha256 } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { type CountingProxy, type Recorded, startCountingProxy } from '../support/counting-proxy.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { type RunningShim, startShim } from '../support/regshim.js';

const HOP = {
  'proxy-authorization': 'Basic cHJveHk6c2VjcmV0LXByb3h5LXB3',
  'proxy-authenticate': 'Basic realm="x"',
  connection: 'keep-alive, X-Hop-Named',
  'x-hop-named': 'named by Connection',
  te: 'trailers',
};
const HOP_NAMES = Object.keys(HOP);

const cleanup = new Cleanup();
let registry: Registry;
let wire: CountingProxy;
let shim: RunningShim;

beforeAll(async () => {
  registry = await cleanup.track(startRegistry());
  wire = await cleanup.track(startCountingProxy(registry.url));
  shim = await cleanup.track(startShim(wire.url));
});
afterAll(() => cleanup.run());

/** node:http, which lets a test send any header (fetch refuses Connection and TE). */
function send(method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, shim.url), { method, headers: { ...HOP, ...headers }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function upstreamSaw(since: number): Recorded[] {
  return wire.requests.slice(since);
}

function expectNoHopByHop(requests: Recorded[]): void {
  expect(requests.length).toBeGreaterThan(0);
  for (const r of requests) {
    for (const name of HOP_NAMES.filter((n) => n !== 'connection')) expect(r.headers[name], `${r.method} ${r.path}: ${name}`).toBeUndefined();
    expect(r.headers.connection ?? 'keep-alive', `${r.method} ${r.path}: connection`).not.toMatch(/x-hop/i);
  }
}

describe('hop-by-hop request headers do not reach the upstream', () => {
  it('a blob GET (the relay)', async () => {
    const digest = await pushBlob(shim.url, 'hop/app', Buffer.from('hop-by-hop blob'));
    const since = wire.requests.length;
    expect((await send('GET', `/v2/hop/app/blobs/${digest}`, {})).status).toBe(200);
    expectNoHopByHop(upstreamSaw(since));
  });

  it('a blob upload: POST, then PUT with the body (the proxy)', async () => {
    const since = wire.requests.length;
    const post = await send('POST', '/v2/hop/app/blobs/uploads/', {});
    expect(post.status).toBe(202);
    const body = Buffer.from('hop-by-hop upload');
    const location = new URL(String(post.headers.location), shim.url);
    location.searchParams.set('digest', sha256(body));
    const put = await send('PUT', location.pathname + location.search, { 'content-type': 'application/octet-stream', 'content-length': String(body.length) }, body);
    expect(put.status).toBe(201);
    expect(upstreamSaw(since).map((r) => r.method)).toEqual(['POST', 'PUT']);
    expectNoHopByHop(upstreamSaw(since));
  });

  it('a manifest PUT and GET (regshim’s own calls)', async () => {
    const config = Buffer.from('{}');
    const configDigest = await pushBlob(shim.url, 'hop/app', config);
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [],
    }));
    const since = wire.requests.length;
    const type = 'application/vnd.oci.image.manifest.v1+json';
    expect((await send('PUT', '/v2/hop/app/manifests/v1', { 'content-type': type, 'content-length': String(manifest.length) }, manifest)).status).toBe(201);
    expect((await send('GET', '/v2/hop/app/manifests/v1', { accept: type })).status).toBe(200);
    expectNoHopByHop(upstreamSaw(since));
  });
});
