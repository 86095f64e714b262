// Small requests: a plain manifest, a converted cache by tag and by digest, a small blob;
// HEAD and GET; rate at 32 connections and latency at one, measured by bench/goload.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash, randomBytes } from 'node:crypto';
import { expectStatus, pushSmall, smallRequest } from './transfer.ts';

const REPO = 'bench/small';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const CACHE_CONFIG = 'application/vnd.buildkit.cacheconfig.v0';
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
// What BuildKit and containerd send when they resolve a reference.
const ACCEPT = `${OCI_INDEX}, ${OCI_MANIFEST}, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json`;

export interface Fixture {
  blobDigest: string;
  indexDigest: string;
  manifestDigest: string;
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * Pushes, straight to the registry, a 740-byte blob, a plain image manifest (tag `plain`),
 * and the blobs of a 10-descriptor cache, whose index goes through regshim (tag `cache`):
 * the registry then holds the converted manifest and the index blob.
 */
export async function setupFixture(direct: string, regshim: string): Promise<Fixture> {
  const blob = randomBytes(740);
  const blobDigest = await pushSmall(direct, REPO, blob);
  const imageConfig = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(blob)] } }));
  const plain = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await pushSmall(direct, REPO, imageConfig), size: imageConfig.length },
    layers: [{ mediaType: LAYER, digest: blobDigest, size: blob.length }],
  }));
  expectStatus('PUT plain manifest', await smallRequest('PUT', `${direct}/v2/${REPO}/manifests/plain`, { 'content-type': OCI_MANIFEST }, plain), 201);

  const cacheConfig = Buffer.from(JSON.stringify({ layers: [], records: [{ digest: sha(randomBytes(32)) }] }));
  const entries = [];
  for (let i = 0; i < 9; i++) {
    const layer = randomBytes(1024);
    entries.push({ mediaType: LAYER, digest: await pushSmall(direct, REPO, layer), size: layer.length, annotations: { 'buildkit/createdat': new Date(0).toISOString() } });
  }
  entries.push({ mediaType: CACHE_CONFIG, digest: await pushSmall(direct, REPO, cacheConfig), size: cacheConfig.length });
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: entries }));
  const put = await smallRequest('PUT', `${regshim}/v2/${REPO}/manifests/cache`, { 'content-type': OCI_INDEX }, index);
  expectStatus('PUT cache index through regshim', put, 201);
  const head = await smallRequest('HEAD', `${direct}/v2/${REPO}/manifests/cache`, { accept: OCI_MANIFEST });
  expectStatus('HEAD converted manifest', head, 200);
  return { blobDigest, indexDigest: sha(index), manifestDigest: String(head.headers['docker-content-digest']) };
}

export type Side = 'anchor' | 'regshim';

export interface SmallCase {
  readonly name: string;
  readonly method: 'GET' | 'HEAD';
  /** regshim-cold: a regshim whose digest map holds nothing, so every answer is rebuilt from the registry. */
  readonly cold: boolean;
  /** The path for an anchor (direct, nginx, Go: the stored form) and for regshim (the restored form). */
  path(side: Side, f: Fixture): string;
}

function cases(): SmallCase[] {
  const out: SmallCase[] = [];
  for (const method of ['HEAD', 'GET'] as const) {
    out.push({ name: `${method} plain manifest`, method, cold: false, path: () => `/v2/${REPO}/manifests/plain` });
    for (const cold of [false, true]) {
      const map = cold ? 'cold map' : 'warm map';
      out.push({ name: `${method} cache by tag, ${map}`, method, cold, path: () => `/v2/${REPO}/manifests/cache` });
      out.push({
        name: `${method} cache by digest, ${map}`,
        method,
        cold,
        // The anchors serve what the registry stores under that cache: the converted manifest.
        path: (side, f) => `/v2/${REPO}/manifests/${side === 'regshim' ? f.indexDigest : f.manifestDigest}`,
      });
    }
    out.push({ name: `${method} 740-byte blob`, method, cold: false, path: (_s, f) => `/v2/${REPO}/blobs/${f.blobDigest}` });
  }
  return out;
}

export function smallCases(quick: boolean): SmallCase[] {
  const all = cases();
  return quick ? all.filter((c) => c.name === 'GET 740-byte blob' || c.name === 'GET cache by tag, warm map') : all;
}

export interface LoadResult {
  rps: number;
  p50ms: number;
  p99ms: number;
}

/**
 * One goload run; fails on any error or unexpected status, so a wrong answer never counts.
 * Asynchronous on purpose: a blocked event loop would miss the servers closing this
 * process's idle keep-alive sockets, and the next upload would write into a closed one.
 */
export async function load(goload: string, url: string, method: string, connections: number, seconds: number): Promise<LoadResult> {
  const { stdout: out } = await promisify(execFile)(goload, ['-url', url, '-method', method, '-c', String(connections), '-d', `${seconds}s`, '-H', `Accept: ${ACCEPT}`], { encoding: 'utf8' });
  const r = JSON.parse(out) as LoadResult & { errors: number; firstError: string; requests: number };
  if (r.errors > 0 || r.requests === 0) throw new Error(`${method} ${url} at c=${connections}: ${r.errors} errors of ${r.requests} (${r.firstError})`);
  return { rps: r.rps, p50ms: r.p50ms, p99ms: r.p99ms };
}
