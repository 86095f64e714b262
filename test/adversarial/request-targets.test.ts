// Odd request targets against regshim as its own process (a throw would end it), in front of
// an instrumented wire to the real registry: what is refused never reaches the upstream.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cleanup } from '../support/cleanup.js';
import { type CountingProxy, startCountingProxy } from '../support/counting-proxy.js';
import { parseResponses, rawExchange } from '../support/raw-http.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { type ShimProcess, isHealthy, startShimProcess } from '../support/regshim.js';

const cleanup = new Cleanup();
let registry: Registry;
let wire: CountingProxy;
let shim: ShimProcess;

beforeAll(async () => {
  registry = await cleanup.track(startRegistry());
  wire = await cleanup.track(startCountingProxy(registry.url));
  shim = await cleanup.track(startShimProcess(wire.url));
});

afterAll(() => cleanup.run());

async function send(method: string, target: string): Promise<{ status: number; body: string; upstream: string[] }> {
  wire.take();
  const res = await rawExchange(shim.url, `${method} ${target} HTTP/1.1\r\nHost: ${shim.host}\r\nConnection: close\r\n\r\n`);
  const [first] = parseResponses(res.bytes, method === 'HEAD' ? 1 : 0);
  return { status: first?.status ?? 0, body: first?.body.toString('utf8') ?? '', upstream: wire.take() };
}

describe('request targets', () => {
  // Each crashed the process, or reached the upstream normalised to another path.
  it.each([
    ['GET', 'http://a:99999/v2/'],
    ['GET', 'http://[::1/v2/'],
    ['GET', 'https://user:pw@[zz]:1/v2/'],
    ['GET', 'http://a%zz/v2/'],
  ])('%s %s (absolute form the URL parser rejects) is served as its path, and the process lives', async (method, target) => {
    const res = await send(method, target);
    expect(res.status).toBe(200);
    expect(res.upstream).toEqual(['GET /v2/']);
    expect(await isHealthy(shim.url)).toBe(true);
  });

  it.each([
    ['GET', '/v2/../../x', 400],
    ['PUT', '/v2/a/x/../b/manifests/t', 400],
    ['GET', '/v2/a/./b/manifests/t', 400],
    ['GET', '/v2/a/%2e%2e/b/manifests/t', 400],
    ['GET', '/v2/a/%2E/b/blobs/sha256:0', 400],
    ['GET', '/v2/a%2fb/manifests/t', 400],
    ['GET', '/v2/a%5cb/manifests/t', 400],
    ['GET', '/v2/a/b/manifests/t%00', 400],
    ['GET', '/v2/a/b/manifests/%zz', 400],
    ['GET', '//v2/', 400],
    ['GET', '/v2//a/manifests/t', 400],
    ['GET', '/v2/a/manifests/t?x="y"', 400],
    ['GET', 'http:/v2/', 400],
    ['GET', '*', 400],
    ['OPTIONS', '*', 400],
    ['CONNECT', 'registry.example:443', 400],
    ['GET', 'v2/', 400],
    ['GET', '/x', 404],
    ['GET', '/', 404],
    ['GET', '/v20/', 404],
    ['GET', '/metrics/../v2/', 400],
    ['GET', 'http://a:99999/x', 404],
  ])('%s %s is refused with %d and never reaches the upstream', async (method, target, status) => {
    const res = await send(method, target);
    expect(res.status).toBe(status);
    expect(res.upstream).toEqual([]);
    if (res.body !== '') expect(JSON.parse(res.body).errors[0].code).toMatch(/^(REQUEST_INVALID|NOT_FOUND)$/);
    expect(await isHealthy(shim.url)).toBe(true);
  });

  it.each([
    '/v2/a\\..\\x/manifests/t',
    '/v2/a/b/manifests/t#frag',
    '/v2/\u00e9/manifests/t',
  ])('%s (bytes the HTTP parser itself refuses) gets 400 and the process lives', async (target) => {
    const res = await rawExchange(shim.url, [Buffer.from(`GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`, 'utf8')]);
    expect(parseResponses(res.bytes)[0]?.status).toBe(400);
    expect(wire.take()).toEqual([]);
    expect(await isHealthy(shim.url)).toBe(true);
  });

  it('canonical registry paths pass, queries as the client wrote them', async () => {
    expect((await send('GET', '/v2/')).upstream).toEqual(['GET /v2/']);
    const tags = await send('GET', '/v2/a/b/tags/list?n=10&last=x');
    expect(tags.status).toBe(404); // the repository does not exist: the registry's own answer
    expect(tags.upstream).toEqual(['GET /v2/a/b/tags/list']);
    expect(wire.requests.at(-1)?.path).toBe('/v2/a/b/tags/list?n=10&last=x');
  });
});
