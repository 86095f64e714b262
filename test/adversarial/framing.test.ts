// Request framing written by hand: smuggling shapes, pipelining, Expect, header limits and
// connection limits. regshim runs in front of an instrumented wire to the real registry, so
// every test can say exactly what reached the upstream.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushBlob } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { type CountingProxy, startCountingProxy } from '../support/counting-proxy.js';
import { parseResponses, rawExchange } from '../support/raw-http.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { type RunningShim, isHealthy, startShim } from '../support/regshim.js';

const cleanup = new Cleanup();
let registry: Registry;
let wire: CountingProxy;
let shim: RunningShim;

beforeAll(async () => {
  registry = await cleanup.track(startRegistry());
  wire = await cleanup.track(startCountingProxy(registry.url));
  shim = await cleanup.track(startShim(wire.url, { maxManifestBytes: '64KiB', maxHeaderCount: '20', maxHeaderBytes: '4KiB' }));
});

afterAll(() => cleanup.run());

const head = (lines: string[]) => `${lines.join('\r\n')}\r\n\r\n`;

describe('smuggling shapes are refused before anything reaches the upstream', () => {
  it.each([
    ['Content-Length with Transfer-Encoding', ['POST /v2/f/a/blobs/uploads/ HTTP/1.1', 'Host: x', 'Content-Length: 4', 'Transfer-Encoding: chunked'], '0\r\n\r\nGET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['two different Content-Lengths', ['POST /v2/f/a/blobs/uploads/ HTTP/1.1', 'Host: x', 'Content-Length: 0', 'Content-Length: 40'], 'GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['Transfer-Encoding that is not chunked alone', ['POST /v2/f/a/blobs/uploads/ HTTP/1.1', 'Host: x', 'Transfer-Encoding: gzip, identity'], ''],
    ['a folded header line (obs-fold)', ['GET /v2/ HTTP/1.1', 'Host: x', 'X-A: a', ' Transfer-Encoding: chunked'], ''],
    ['a space before the colon', ['GET /v2/ HTTP/1.1', 'Host: x', 'Transfer-Encoding : chunked'], ''],
    ['a bare LF line ending', ['GET /v2/ HTTP/1.1\nHost: x\nX: y'], ''],
  ])('%s: 400, closed, upstream untouched', async (_name, lines, body) => {
    wire.take();
    const res = await rawExchange(shim.url, head(lines) + body);
    expect(parseResponses(res.bytes).map((r) => r.status)).toEqual([400]);
    expect(res.closed).toBe(true);
    expect(wire.take()).toEqual([]);
    expect(await isHealthy(shim.url)).toBe(true);
  });

  it('a bad chunk inside an upload body closes the connection, nothing is answered twice', async () => {
    const post = await fetch(`${shim.url}/v2/f/chunks/blobs/uploads/`, { method: 'POST' });
    const location = new URL(post.headers.get('location') ?? '', shim.url);
    const res = await rawExchange(shim.url, [
      head([`PATCH ${location.pathname}${location.search} HTTP/1.1`, 'Host: x', 'Content-Type: application/octet-stream', 'Transfer-Encoding: chunked']),
      '4\r\nabcd\r\nzz\r\nnot a chunk\r\n',
    ]);
    expect(res.closed).toBe(true);
    expect(parseResponses(res.bytes).filter((r) => r.status >= 200).length).toBeLessThanOrEqual(1);
    expect(await isHealthy(shim.url)).toBe(true);
  });
});

describe('odd but harmless requests are answered, and the process lives', () => {
  it.each([
    ['HTTP/1.0 without Host', 'GET /v2/ HTTP/1.0\r\n\r\n', 200],
    ['an Upgrade request', 'GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', 200],
    ['h2c upgrade', 'GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n', 200],
    ['a request line longer than the head limit', `GET /v2/${'a'.repeat(5000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 431],
    ['a NUL in a header value', 'GET /v2/ HTTP/1.1\r\nHost: x\r\nX-A: a\u0000b\r\n\r\n', 400],
    ['an unknown method', 'BREW /v2/ HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 400],
  ])('%s: %d', async (_name, request, status) => {
    const res = await rawExchange(shim.url, request, { responses: 1 });
    expect(parseResponses(res.bytes)[0]?.status).toBe(status);
    expect(await isHealthy(shim.url)).toBe(true);
  });
});

describe('pipelining', () => {
  it('answers pipelined requests in order', async () => {
    const res = await rawExchange(shim.url, head(['GET /v2/ HTTP/1.1', 'Host: x']) + head(['GET /v2/nope/x/tags/list HTTP/1.1', 'Host: x', 'Connection: close']));
    expect(parseResponses(res.bytes).map((r) => r.status)).toEqual([200, 404]);
  });

  it('a malformed request behind a blob download never writes into its body: the connection is cut', async () => {
    const blob = randomBytes(16 * 1024 * 1024);
    const digest = await pushBlob(shim.url, 'f/pipe', blob);
    const socket = net.connect(Number(new URL(shim.url).port), '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => undefined);
    socket.write(head([`GET /v2/f/pipe/blobs/${digest} HTTP/1.1`, 'Host: x']));
    // The download has begun; stop reading so that it cannot finish, then send garbage.
    await new Promise((resolve) => socket.once('data', resolve));
    socket.pause();
    socket.write('NOT HTTP AT ALL\r\n\r\n');
    await new Promise((resolve) => setTimeout(resolve, 300));
    socket.resume();
    await closed;
    const bytes = Buffer.concat(chunks);
    const end = bytes.indexOf('\r\n\r\n');
    expect(bytes.subarray(0, 12).toString()).toBe('HTTP/1.1 200');
    const body = bytes.subarray(end + 4);
    // Whatever arrived is the blob's own bytes, cut short, and nothing else.
    expect(body.length).toBeLessThan(blob.length);
    expect(body.equals(blob.subarray(0, body.length))).toBe(true);
    expect(await isHealthy(shim.url)).toBe(true);
  });
});

describe('Expect: 100-continue', () => {
  it('an over-limit manifest gets 413 at once, without 100 Continue, and the body is never asked for', async () => {
    wire.take();
    const res = await rawExchange(shim.url, head([
      'PUT /v2/f/big/manifests/t HTTP/1.1', 'Host: x', 'Content-Type: application/vnd.oci.image.index.v1+json',
      'Content-Length: 5000000', 'Expect: 100-continue',
    ]), { waitMs: 5000 });
    const responses = parseResponses(res.bytes);
    expect(responses.map((r) => r.status)).toEqual([413]);
    expect(JSON.parse(responses[0]?.body.toString() ?? '{}').errors[0].code).toBe('MANIFEST_TOO_LARGE');
    expect(res.closed).toBe(true);
    expect(res.elapsedMs).toBeLessThan(2000);
    expect(wire.take()).toEqual([]);
  });

  it('an over-limit manifest without Expect is refused from its Content-Length, unread', async () => {
    const res = await rawExchange(shim.url, [head([
      'PUT /v2/f/big/manifests/t HTTP/1.1', 'Host: x', 'Content-Type: application/vnd.oci.image.index.v1+json', 'Content-Length: 5000000',
    ]), '{"schemaVersion":'], { waitMs: 5000 });
    expect(parseResponses(res.bytes).map((r) => r.status)).toEqual([413]);
    expect(res.closed).toBe(true);
  });

  it('a manifest within the limit gets 100 Continue, then the upstream answer', async () => {
    const manifest = '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}';
    const res = await rawExchange(shim.url, [head([
      'PUT /v2/f/small/manifests/t HTTP/1.1', 'Host: x', 'Content-Type: application/vnd.oci.image.manifest.v1+json',
      `Content-Length: ${manifest.length}`, 'Expect: 100-continue', 'Connection: close',
    ])], { responses: 1, waitMs: 3000 });
    expect(parseResponses(res.bytes)[0]?.status).toBe(100);
  });
});

describe('header limits', () => {
  it('more header fields than --max-header-count get 431', async () => {
    wire.take();
    const lines = ['GET /v2/ HTTP/1.1', 'Host: x', ...Array.from({ length: 25 }, (_, i) => `X-H${i}: v`), 'Connection: close'];
    const res = await rawExchange(shim.url, head(lines));
    const [first] = parseResponses(res.bytes);
    expect(first?.status).toBe(431);
    expect(JSON.parse(first?.body.toString() ?? '{}').errors[0].code).toBe('HEADERS_TOO_LARGE');
    expect(res.closed).toBe(true);
    expect(wire.take()).toEqual([]);
  });

  it('a head larger than --max-header-bytes gets 431', async () => {
    const res = await rawExchange(shim.url, head(['GET /v2/ HTTP/1.1', 'Host: x', `X-Big: ${'a'.repeat(5000)}`]));
    expect(parseResponses(res.bytes).map((r) => r.status)).toEqual([431]);
    expect(res.closed).toBe(true);
  });
});

describe('client connections', () => {
  it('past --max-client-connections new connections are closed, and served again once there is room', async () => {
    const small = await cleanup.track(startShim(wire.url, { maxClientConnections: '3' }));
    const open: net.Socket[] = [];
    for (let i = 0; i < 3; i++) {
      const s = net.connect(Number(new URL(small.url).port), '127.0.0.1');
      await new Promise((r) => s.once('connect', r));
      open.push(s);
    }
    await expect.poll(() => new Promise<number>((r) => small.shim.server.getConnections((_e, n) => r(n)))).toBe(3);
    const refused = await rawExchange(small.url, head(['GET /v2/ HTTP/1.1', 'Host: x']), { waitMs: 2000 });
    expect(refused.closed).toBe(true);
    expect(refused.bytes.length).toBe(0);
    for (const s of open) s.destroy();
    await expect.poll(async () => (await rawExchange(small.url, head(['GET /v2/ HTTP/1.1', 'Host: x', 'Connection: close']))).text.slice(0, 12)).toBe('HTTP/1.1 200');
  });
});
