// OCI image layouts and archives (image-spec "image-layout") for `ctr images import`
// and skopeo's `oci:` transport, and the fixture cache they are usually built from.
import { createHash } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand } from './processes.js';

export interface LayoutContent {
  /** The manifest or index that index.json points at, stored as a blob byte for byte. */
  manifestBytes: Buffer;
  manifestMediaType: string;
  /** Every other blob, keyed by `sha256:<hex>`. */
  blobs: Map<string, Buffer>;
  /** Becomes the `org.opencontainers.image.ref.name` annotation (a tag for ctr and skopeo). */
  refName: string;
}

export function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export async function writeOciLayout(dir: string, content: LayoutContent): Promise<void> {
  const blobDir = join(dir, 'blobs', 'sha256');
  await mkdir(blobDir, { recursive: true });
  const manifestDigest = sha256(content.manifestBytes);
  const all = new Map(content.blobs).set(manifestDigest, content.manifestBytes);
  for (const [digest, bytes] of all) {
    if (sha256(bytes) !== digest) throw new Error(`blob keyed ${digest} has digest ${sha256(bytes)}`);
    await writeFile(join(blobDir, digest.slice('sha256:'.length)), bytes);
  }
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const index = {
    schemaVersion: 2,
    manifests: [
      {
        mediaType: content.manifestMediaType,
        digest: manifestDigest,
        size: content.manifestBytes.length,
        annotations: { 'org.opencontainers.image.ref.name': content.refName },
      },
    ],
  };
  await writeFile(join(dir, 'index.json'), JSON.stringify(index));
}

/** Writes the layout into `dir` and tars it beside it as `<dir>.tar`; returns the tar's path. */
export async function writeOciArchive(opts: LayoutContent & { dir: string }): Promise<string> {
  await writeOciLayout(opts.dir, opts);
  const tar = `${opts.dir}.tar`;
  const r = await runCommand('tar', ['-cf', tar, '-C', opts.dir, '.']);
  if (r.code !== 0) throw new Error(`tar exited ${r.code}: ${r.stderr}`);
  return tar;
}

export type CacheForm = 'index' | 'dlist' | 'imgmanifest';

export interface FixtureCache {
  bytes: Buffer;
  digest: string;
  mediaType: string;
  /** The cacheconfig and layer blobs, keyed by `sha256:<hex>`. */
  blobs: Map<string, Buffer>;
}

export function fixturesDir(): string {
  const repo = fileURLToPath(new URL('../..', import.meta.url));
  return process.env.REGSHIM_FIXTURES ?? resolve(repo, '../shared/fixtures/buildkit-cache');
}

export async function fixtureCache(form: CacheForm): Promise<FixtureCache> {
  const dir = fixturesDir();
  const bytes = await readFile(join(dir, `${form}.json`));
  const parsed = JSON.parse(bytes.toString('utf8')) as {
    mediaType: string;
    config?: { digest: string };
    layers?: { digest: string }[];
    manifests?: { digest: string }[];
  };
  const digests = [...(parsed.manifests ?? []), ...(parsed.config ? [parsed.config] : []), ...(parsed.layers ?? [])].map(
    (d) => d.digest,
  );
  const blobs = new Map<string, Buffer>();
  for (const digest of digests) {
    blobs.set(digest, await readFile(join(dir, 'blobs', digest.slice('sha256:'.length))));
  }
  return { bytes, digest: sha256(bytes), mediaType: parsed.mediaType, blobs };
}

/**
 * Copies the fixture's build context to `dest` with the modes it was built with (0644):
 * BuildKit's cache keys hash each file's mode, and the fixture files are read-only (0444).
 */
export async function copyFixtureContext(dest: string): Promise<void> {
  const src = join(fixturesDir(), 'ctx');
  await mkdir(dest, { recursive: true });
  for (const name of await readdir(src)) {
    await writeFile(join(dest, name), await readFile(join(src, name)));
    await chmod(join(dest, name), 0o644);
  }
}
