// Blob transfers: generated while sent, counted (and in warm-up hashed) while received,
// never held whole.
import { type Hash, createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const MiB = 1 << 20;
export const REPO = 'bench/blobs';

export const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

// Every blob is size-1 copies of one random 1 MiB chunk followed by a last chunk that
// starts with a unique tag, so each upload is a blob the registry has never seen (no dedup
// shortcut). The PUT needs the digest in its URL before the body goes out, so it is
// computed beforehand from a cached hash of the shared prefix: hashing during the timed
// upload would take CPU from the proxies on a small machine.
const CHUNK = randomBytes(MiB);
const prefixes = new Map<number, Hash>();

export interface Blob {
  readonly digest: string;
  readonly size: number;
  readonly lastChunk: Buffer;
  readonly chunks: number;
}

export function makeBlob(sizeMiB: number, tag: string): Blob {
  let prefix = prefixes.get(sizeMiB);
  if (!prefix) {
    prefix = createHash('sha256');
    for (let i = 0; i < sizeMiB - 1; i++) prefix.update(CHUNK);
    prefixes.set(sizeMiB, prefix);
  }
  const lastChunk = Buffer.from(CHUNK);
  lastChunk.write(`regshim-bench ${tag} ${randomBytes(8).toString('hex')}`);
  return { digest: `sha256:${prefix.copy().update(lastChunk).digest('hex')}`, size: sizeMiB * MiB, lastChunk, chunks: sizeMiB };
}

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A request with a small or no body; the answer's body is collected (it is small). */
export function smallRequest(method: string, url: string, headers: http.OutgoingHttpHeaders = {}, body?: Buffer): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    const req = http.request(url, { method, agent, headers: { 'content-length': body?.length ?? 0, ...headers } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

export function expectStatus(what: string, answer: Answer, status: number): void {
  if (answer.status !== status) throw new Error(`${what}: expected ${status}, got ${answer.status}: ${answer.body.toString('utf8').slice(0, 500)}`);
}

/** POST + monolithic PUT ?digest= of a small blob (setup, not timed). */
export async function pushSmall(base: string, repo: string, bytes: Buffer): Promise<string> {
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const started = await smallRequest('POST', `${base}/v2/${repo}/blobs/uploads/`);
  expectStatus('POST upload', started, 202);
  const loc = new URL(started.headers.location ?? '', base);
  loc.searchParams.set('digest', digest);
  expectStatus('PUT blob', await smallRequest('PUT', `${base}${loc.pathname}${loc.search}`, { 'content-type': 'application/octet-stream' }, bytes), 201);
  return digest;
}

/** POST then one monolithic PUT ?digest= carrying the whole blob. Returns the PUT's seconds. */
export async function upload(base: string, blob: Blob): Promise<number> {
  const started = await smallRequest('POST', `${base}/v2/${REPO}/blobs/uploads/`);
  expectStatus('POST upload', started, 202);
  // Follow the Location on the path being measured: only its path and query matter here.
  const location = new URL(started.headers.location ?? '', base);
  location.searchParams.set('digest', blob.digest);
  const t0 = performance.now();
  const answer = await new Promise<Answer>((resolve, reject) => {
    const req = http.request(`${base}${location.pathname}${location.search}`, {
      method: 'PUT',
      agent,
      headers: { 'content-type': 'application/octet-stream', 'content-length': blob.size },
    }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    // 1 MiB at a time, waiting for 'drain': as fast as the path takes it, and no faster.
    let sent = 0;
    const pump = (): void => {
      while (sent < blob.chunks) {
        const chunk = sent === blob.chunks - 1 ? blob.lastChunk : CHUNK;
        sent++;
        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
  const seconds = (performance.now() - t0) / 1000;
  expectStatus('PUT upload', answer, 201);
  if (answer.headers['docker-content-digest'] !== blob.digest) {
    throw new Error(`PUT upload: registry stored ${String(answer.headers['docker-content-digest'])}, expected ${blob.digest}`);
  }
  return seconds;
}

/**
 * GET the blob. Timed downloads count bytes only (hashing would take a core's worth of CPU
 * from the proxies); `verify` hashes too and fails on a wrong byte (warm-up, every path).
 */
export async function download(base: string, blob: Blob, verify = false): Promise<number> {
  const t0 = performance.now();
  const { status, bytes, digest } = await new Promise<{ status: number; bytes: number; digest: string }>((resolve, reject) => {
    const req = http.get(`${base}/v2/${REPO}/blobs/${blob.digest}`, { agent }, (res) => {
      const hash = verify ? createHash('sha256') : undefined;
      let bytes = 0;
      res.on('data', (d: Buffer) => {
        bytes += d.length;
        hash?.update(d);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, digest: hash ? `sha256:${hash.digest('hex')}` : blob.digest }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
  const seconds = (performance.now() - t0) / 1000;
  if (status !== 200) throw new Error(`GET blob via ${base}: expected 200, got ${status}`);
  if (bytes !== blob.size || digest !== blob.digest) {
    throw new Error(`GET blob via ${base}: got ${bytes} bytes with ${digest}, expected ${blob.size} bytes with ${blob.digest}`);
  }
  return seconds;
}

/** n uploads at once, then n downloads at once; aggregate seconds of each phase. */
export async function parallel(base: string, blobs: Blob[]): Promise<{ upload: number; download: number }> {
  let t0 = performance.now();
  await Promise.all(blobs.map((b) => upload(base, b)));
  const up = (performance.now() - t0) / 1000;
  t0 = performance.now();
  await Promise.all(blobs.map((b) => download(base, b)));
  return { upload: up, download: (performance.now() - t0) / 1000 };
}

/**
 * Drop a blob once measured: the API delete unlinks it, and its data file goes too, which
 * keeps the temp dir at about one run's blobs and leaves no gigabytes of dirty pages to
 * write back in the middle of a later run.
 */
export async function dropBlob(base: string, dataDir: string, blob: Blob): Promise<void> {
  expectStatus('DELETE blob', await smallRequest('DELETE', `${base}/v2/${REPO}/blobs/${blob.digest}`), 202);
  const hex = blob.digest.slice('sha256:'.length);
  rmSync(path.join(dataDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex), { recursive: true, force: true });
}
