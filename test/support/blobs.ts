// Pushing blobs and manifests over plain HTTP, for tests that set up a registry's content.
import { createHash } from 'node:crypto';
import http from 'node:http';

export const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** POST + monolithic PUT, as containerd does; returns the digest. */
export async function pushBlob(base: string, repo: string, blob: Buffer, headers: Record<string, string> = {}): Promise<string> {
  const digest = sha256(blob);
  const post = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers });
  if (post.status !== 202) throw new Error(`POST upload to ${base}: ${post.status} ${await post.text()}`);
  const location = new URL(post.headers.get('location') ?? '', base);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, { method: 'PUT', headers: { ...headers, 'content-type': 'application/octet-stream' }, body: new Uint8Array(blob) });
  if (put.status !== 201) throw new Error(`PUT blob to ${base}: ${put.status} ${await put.text()}`);
  return digest;
}

export async function pushBlobs(base: string, repo: string, blobs: Iterable<Buffer>, headers: Record<string, string> = {}): Promise<void> {
  for (const blob of blobs) await pushBlob(base, repo, blob, headers);
}

export interface Fetched {
  status: number;
  headers: Headers;
  bytes: Buffer;
}

export async function putManifest(base: string, repo: string, ref: string, bytes: Buffer, mediaType: string, headers: Record<string, string> = {}): Promise<Fetched> {
  const res = await fetch(`${base}/v2/${repo}/manifests/${ref}`, { method: 'PUT', headers: { ...headers, 'content-type': mediaType }, body: new Uint8Array(bytes) });
  return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
}

export const ALL_MANIFEST_TYPES = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  '*/*',
].join(', ');

/** GET or HEAD a manifest with BuildKit's resolver Accept unless told otherwise. */
export async function getManifest(base: string, repo: string, ref: string, opts: { method?: 'GET' | 'HEAD'; accept?: string; headers?: Record<string, string> } = {}): Promise<Fetched> {
  const res = await fetch(`${base}/v2/${repo}/manifests/${ref}`, {
    method: opts.method ?? 'GET',
    headers: { accept: opts.accept ?? ALL_MANIFEST_TYPES, ...opts.headers },
  });
  return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
}

/** PATCHes `pieces` KiB to an upload URL, one every `gapMs`, as a slow client does; resolves the status. */
export function trickleUpload(url: string, pieces: number, gapMs: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const req = http.request(new URL(url), { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    let sent = 0;
    const tick = setInterval(() => {
      req.write(Buffer.alloc(1024, sent));
      if (++sent === pieces) {
        clearInterval(tick);
        req.end();
      }
    }, gapMs);
  });
}
