// skopeo as a generic image client, and small OCI images for it to copy.
// It runs as nobody: as root it would write /var/lib/containers/cache on the machine.
import { createHash } from 'node:crypto';
import { chmod, lchown, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { sha256, writeOciLayout } from './oci-archive.js';
import { runCommand, type RunResult } from './processes.js';

const NOBODY = 65534;

/**
 * `skopeo --policy <tmpDir>/policy.json <args>` as nobody, with HOME and TMPDIR under
 * tmpDir. Everything inside tmpDir (layouts to read or write) is handed to nobody first;
 * tmpDir's parents must be traversable (a makeTempDir() folder is).
 */
export async function skopeo(args: string[], opts: { tmpDir: string }): Promise<RunResult> {
  const { tmpDir } = opts;
  const home = join(tmpDir, 'home');
  const tmp = join(tmpDir, 'tmp');
  const policy = join(tmpDir, 'policy.json');
  await mkdir(home, { recursive: true });
  await mkdir(tmp, { recursive: true });
  await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  await chmod(tmpDir, 0o755);
  await giveToNobody(tmpDir);
  return runCommand(
    'setpriv',
    [
      `--reuid=${NOBODY}`,
      `--regid=${NOBODY}`,
      '--clear-groups',
      'env',
      `HOME=${home}`,
      `TMPDIR=${tmp}`,
      'skopeo',
      '--policy',
      policy,
      ...args,
    ],
    { timeoutMs: 120_000 },
  );
}

async function giveToNobody(dir: string): Promise<void> {
  await lchown(dir, NOBODY, NOBODY);
  for (const entry of await readdir(dir, { recursive: true })) {
    await lchown(join(dir, entry), NOBODY, NOBODY);
  }
}

export interface TestImage {
  /** Digest of the manifest (single-arch) or index (multi-arch) at the layout's tag. */
  digest: string;
  bytes: Buffer;
  mediaType: string;
  /** Every blob besides `bytes` (configs, layers, child manifests), keyed by digest. */
  blobs: Map<string, Buffer>;
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

/** Writes a single-arch (linux/amd64) OCI layout with `layers` small tar+gzip layers, tagged `refName`. */
export async function makeTestImage(
  dir: string,
  opts: { layers: number; seed: string; refName?: string },
): Promise<TestImage> {
  const image = buildImage(opts.layers, opts.seed, 'amd64');
  await writeOciLayout(dir, {
    manifestBytes: image.bytes,
    manifestMediaType: OCI_MANIFEST,
    blobs: image.blobs,
    refName: opts.refName ?? 'latest',
  });
  return image;
}

/** Writes an OCI layout whose tag `refName` is an index over linux/amd64 and linux/arm64 images. */
export async function makeMultiArchLayout(dir: string, opts: { seed?: string; refName?: string } = {}): Promise<TestImage> {
  const seed = opts.seed ?? 'multi';
  const blobs = new Map<string, Buffer>();
  const manifests = (['amd64', 'arm64'] as const).map((arch) => {
    const image = buildImage(2, `${seed}-${arch}`, arch);
    for (const [d, b] of image.blobs) blobs.set(d, b);
    blobs.set(image.digest, image.bytes);
    return { mediaType: OCI_MANIFEST, digest: image.digest, size: image.bytes.length, platform: { architecture: arch, os: 'linux' } };
  });
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }));
  await writeOciLayout(dir, { manifestBytes: bytes, manifestMediaType: OCI_INDEX, blobs, refName: opts.refName ?? 'latest' });
  return { digest: sha256(bytes), bytes, mediaType: OCI_INDEX, blobs };
}

function buildImage(layerCount: number, seed: string, arch: 'amd64' | 'arm64'): TestImage {
  const blobs = new Map<string, Buffer>();
  const layers = [];
  const diffIds = [];
  for (let i = 0; i < layerCount; i++) {
    const tar = tarOneFile(`layer-${i}.bin`, pseudoRandom(`${seed}/${i}`, 1024));
    const gz = gzipSync(tar);
    blobs.set(sha256(gz), gz);
    diffIds.push(sha256(tar));
    layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(gz), size: gz.length });
  }
  const config = Buffer.from(
    JSON.stringify({
      architecture: arch,
      os: 'linux',
      config: { Env: ['PATH=/usr/bin:/bin'] },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: diffIds.map(() => ({ created_by: 'regshim test layer' })),
    }),
  );
  blobs.set(sha256(config), config);
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers,
    }),
  );
  return { digest: sha256(bytes), bytes, mediaType: OCI_MANIFEST, blobs };
}

/** Deterministic bytes, so a seed always gives the same digests. */
function pseudoRandom(seed: string, length: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; parts.length * 32 < length; i++) parts.push(createHash('sha256').update(`${seed}#${i}`).digest());
  return Buffer.concat(parts).subarray(0, length);
}

/** A ustar archive holding one regular file (POSIX.1-2001 "ustar Interchange Format"). */
function tarOneFile(name: string, data: Buffer): Buffer {
  const header = Buffer.alloc(512);
  const put = (value: string, offset: number, length: number): void => {
    header.write(value, offset, length, 'ascii');
  };
  const octal = (n: number, length: number): string => `${n.toString(8).padStart(length - 1, '0')}\0`;
  put(name, 0, 100);
  put(octal(0o644, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(data.length, 12), 124, 12);
  put(octal(0, 12), 136, 12);
  put('        ', 148, 8); // checksum is computed with its own field as spaces
  put('0', 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  let sum = 0;
  for (const byte of header) sum += byte;
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  const padding = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([header, data, padding, Buffer.alloc(1024)]);
}
