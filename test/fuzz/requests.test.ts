// Fuzzing everything around the body: headers, request targets (sent as raw bytes, so no
// client library normalises them) and digests, against an in-process regshim in front of
// the real registry. No crash, no unhandled rejection, every request answered, and no 5xx
// of regshim's own. FUZZ_SEED replays another seed, FUZZ_SCALE runs more (or fewer) cases.
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { pushBlobs, putManifest } from '../support/blobs.js';
import { type FixtureCache, fixtureCache } from '../support/oci-archive.js';
import { type Harness, explore, ownServerError, startHarness } from './harness.js';

const REPO = 'fuzz/req';
let h: Harness;
let cache: FixtureCache;

beforeAll(async () => {
  h = await startHarness();
  cache = await fixtureCache('index');
});

// Each test starts from a stored cache: fuzzed DELETEs of an earlier test may have removed it.
beforeEach(async () => {
  await pushBlobs(h.registry.url, REPO, cache.blobs.values());
  const put = await putManifest(h.shim.url, REPO, 'cache', cache.bytes, cache.mediaType);
  if (put.status !== 201) throw new Error(`setting up ${REPO}:cache: ${put.status}`);
});

afterAll(() => h?.stop());

const METHODS = ['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE', 'OPTIONS'] as const;

function escapedOrOwn(status: number, body: Buffer, upstream: Parameters<typeof ownServerError>[2]): string | undefined {
  if (h.escaped.length > 0) return `an error escaped: ${h.escaped.splice(0).map((e) => (e instanceof Error ? e.stack?.split('\n').slice(0, 4).join(' | ') : String(e))).join('; ')}`;
  const own = ownServerError(status, body, upstream);
  return own ? `${own}: ${body.toString('utf8').slice(0, 200)}` : undefined;
}

/** undici refuses some headers itself: those cases say nothing about regshim. */
const clientRefused = (err: unknown) => (err as { code?: string }).code === 'UND_ERR_INVALID_ARG' || /invalid .*header|header .*invalid/i.test((err as Error).message);

describe('fuzzing', () => {
  it('headers: any names and values on every kind of route', { timeout: 300_000 }, async ({ annotate }) => {
    const headerName = fc.oneof(
      fc.constantFrom(
        'accept', 'content-type', 'authorization', 'x-request-id', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-for', 'forwarded',
        'range', 'if-none-match', 'if-match', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'docker-content-digest', 'cookie', 'via', 'max-forwards',
      ),
      fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/),
    );
    const headerValue = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.constantFrom('', '*/*', 'application/vnd.oci.image.index.v1+json;q=0', 'https', 'evil.example:1', 'bytes=0-', 'bytes=-1', 'bytes=5-1', 'Bearer x', 'Basic Og==', 'gzip', 'h2c'),
      fc.stringMatching(/^[\x20-\x7e]{0,200}$/),
      fc.integer({ min: 1, max: 20 }).map((k) => 'a'.repeat(k * 1024)),
      fc.array(fc.constantFrom('application/vnd.oci.image.index.v1+json', 'application/vnd.oci.image.manifest.v1+json', '*/*', 'text/*', ';q=0.5', ','), { maxLength: 12 }).map((a) => a.join(',')),
    );
    const arb = fc.record({
      method: fc.constantFrom(...METHODS),
      path: fc.constantFrom(
        `/v2/${REPO}/manifests/cache`, `/v2/${REPO}/manifests/${cache.digest}`, `/v2/${REPO}/manifests/none`,
        `/v2/${REPO}/blobs/${[...cache.blobs.keys()][0]}`, `/v2/${REPO}/blobs/uploads/`, '/v2/', `/v2/${REPO}/tags/list`, '/healthz', '/metrics',
      ),
      headers: fc.dictionary(headerName, headerValue, { maxKeys: 6 }),
      body: fc.constantFrom<'none' | 'cache' | 'junk'>('none', 'cache', 'junk'),
    });
    const { runs, report } = await explore({
      arb,
      numRuns: 3_000,
      concurrency: 8,
      timeLimitMs: 60_000,
      describe: (v) => `${v.method} ${v.path} ${JSON.stringify(v.headers).slice(0, 600)} body ${v.body}`,
      group: (v) => `${v.method} ${v.path.replace(/sha256:\w+/, 'DIGEST')}`,
      run: async (v) => {
        const body = v.method === 'GET' || v.method === 'HEAD' || v.body === 'none' ? undefined : v.body === 'cache' ? cache.bytes : Buffer.from('{"x":');
        let res;
        try {
          res = await h.send(v.method, v.path, v.headers, body);
        } catch (err) {
          if (clientRefused(err)) return undefined;
          throw err;
        }
        return escapedOrOwn(res.status, res.body, res.upstream);
      },
    });
    await annotate(`headers: ${runs} runs`);
    expect(report, report).toBe('');
  });

  it('request targets: raw bytes, odd forms, dot segments, encodings', { timeout: 300_000 }, async ({ annotate }) => {
    const segment = fc.oneof(
      fc.stringMatching(/^[a-z0-9]{1,8}$/),
      fc.constantFrom('..', '.', '%2e%2e', '%2E.', '%2F', '%2f..', '\\', '..\\..', '', ';x', '%00', 'é', '%ZZ', '%', 'a'.repeat(300), '~', '@', ':', '*', 'manifests', 'blobs', 'uploads', 'v2'),
    );
    const tail = fc.constantFrom(
      '', '/manifests/cache', `/manifests/${cache.digest}`, '/manifests/', `/blobs/${cache.digest}`, '/blobs/uploads/', '/blobs/uploads/x', '/tags/list', '/manifests/..', '/manifests/%2e%2e',
    );
    const prefix = fc.constantFrom('/v2/', '/v2', '', '//v2/', '/v2//', '/v2/../', '/./v2/', '/V2/', 'http://a:99999/v2/', 'http://127.0.0.1/v2/', 'http://[::1/v2/', 'https://x/v2/', '*', '/%2e%2e/v2/', '/v2/%2e%2e/%2e%2e/');
    const query = fc.constantFrom('', '?', '?n=1', '?digest=sha256:x', '?a=%', '?#frag', '#frag', `?${'q'.repeat(2000)}`);
    const arb = fc.record({
      method: fc.oneof(fc.constantFrom(...METHODS), fc.constantFrom('PROPFIND', 'CONNECT', 'TRACE', 'get')),
      target: fc.tuple(prefix, fc.array(segment, { maxLength: 4 }), tail, query).map(([p, segs, t, q]) => `${p}${[REPO, ...segs].join('/')}${t}${q}`),
      body: fc.boolean(),
    });
    const { runs, report } = await explore({
      arb,
      numRuns: 3_000,
      concurrency: 8,
      timeLimitMs: 60_000,
      describe: (v) => `${v.method} ${v.target.slice(0, 400)}${v.body ? ' with a body' : ''}`,
      group: (v) => `${v.method.toUpperCase() === 'HEAD' ? 'HEAD' : 'other'} ${/^https?:/.test(v.target) ? 'absolute-form' : 'origin-form'}`,
      run: async (v) => {
        const body = v.body ? '{"schemaVersion":2}' : '';
        const raw = `${v.method} ${v.target} HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\n${body ? `Content-Length: ${body.length}\r\n` : ''}\r\n${body}`;
        const { text, upstream } = await h.raw(raw);
        const status = /^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1];
        const escaped = escapedOrOwn(0, Buffer.alloc(0), []);
        if (escaped) return escaped;
        // Node closes a CONNECT nobody handles without an answer: a refusal, and all regshim needs.
        if (status === undefined && v.method === 'CONNECT' && text === '') return undefined;
        if (status === undefined) return `no HTTP answer before the connection closed (got ${JSON.stringify(text.slice(0, 80))})`;
        const answerBody = Buffer.from(text.slice(text.indexOf('\r\n\r\n') + 4), 'latin1');
        return escapedOrOwn(Number(status), answerBody, upstream);
      },
    });
    await annotate(`request targets: ${runs} runs`);
    expect(report, report).toBe('');
  });

  it('digests: every algorithm, length and case, on manifests and blobs', { timeout: 300_000 }, async ({ annotate }) => {
    const digest = fc.oneof(
      fc.tuple(
        fc.constantFrom('sha256', 'sha512', 'sha384', 'SHA256', 'md5', '', 'sha256+b64u', 'blake3', 'sha256.x'),
        fc.integer({ min: 0, max: 130 }),
        fc.constantFrom('0123456789abcdef', '0123456789ABCDEF', 'xyz-_.='),
        fc.nat(),
      ).map(([alg, len, alphabet, seed]) => {
        let hex = '';
        for (let i = 0; i < len; i++) hex += alphabet[(seed + i * 7919) % alphabet.length];
        return `${alg}:${hex}`;
      }),
      fc.constantFrom(cache.digest, cache.digest.toUpperCase(), `${cache.digest}0`, cache.digest.slice(0, -1), cache.digest.replace('sha256', 'sha512')),
      fc.stringMatching(/^[a-zA-Z0-9+._:-]{1,80}$/),
    );
    const arb = fc.record({ method: fc.constantFrom('GET', 'HEAD', 'PUT', 'DELETE'), where: fc.constantFrom('manifests', 'blobs'), digest });
    const { runs, report } = await explore({
      arb,
      numRuns: 2_000,
      concurrency: 8,
      timeLimitMs: 60_000,
      describe: (v) => `${v.method} /v2/${REPO}/${v.where}/${v.digest}`,
      group: (v) => `${v.method} ${v.where}`,
      run: async (v) => {
        const body = v.method === 'PUT' ? cache.bytes : undefined;
        const headers: Record<string, string> = v.method === 'PUT' ? { 'content-type': cache.mediaType } : { accept: '*/*' };
        const res = await h.send(v.method, `/v2/${REPO}/${v.where}/${v.digest}`, headers, body);
        return escapedOrOwn(res.status, res.body, res.upstream);
      },
    });
    await annotate(`digests: ${runs} runs`);
    expect(report, report).toBe('');
  });
});
