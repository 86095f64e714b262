// The conversion in-process, on the built code: a cache index of n descriptors to its image
// manifest (parse, validate, convert, hash, check that it can be rebuilt) and back (read the manifest, verify and restore
// the index bytes), as the PUT and GET handlers run them.
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { ROOT } from './servers.ts';

interface ConvertModule {
  toImageManifest(index: unknown, bytes: Uint8Array, mediaType: string): { bytes: Buffer };
  isRebuildable(converted: unknown, bytes: Uint8Array): boolean;
  readConvertedManifest(bytes: Uint8Array): unknown;
  restoreIndex(ref: unknown, blob: Uint8Array): Buffer;
}
interface DetectModule {
  classifyManifest(bytes: Uint8Array, contentType: string | undefined): { kind: string; index?: unknown };
}

function index(descriptors: number): Buffer {
  const hex = () => createHash('sha256').update(randomBytes(8)).digest('hex');
  const manifests: object[] = [];
  for (let i = 0; i < descriptors - 1; i++) {
    manifests.push({
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      digest: `sha256:${hex()}`,
      size: 1000 + i,
      annotations: { 'buildkit/createdat': '2026-01-01T00:00:00Z', 'containerd.io/uncompressed': `sha256:${hex()}` },
    });
  }
  manifests.push({ mediaType: 'application/vnd.buildkit.cacheconfig.v0', digest: `sha256:${hex()}`, size: 4096 });
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }));
}

export interface ConvertResult {
  descriptors: number;
  indexBytes: number;
  convertMs: number[];
  restoreMs: number[];
}

export async function benchConvert(sizes: number[], iterations: number): Promise<ConvertResult[]> {
  const convert = (await import(path.join(ROOT, 'dist/cache/convert.js'))) as ConvertModule;
  const detect = (await import(path.join(ROOT, 'dist/cache/detect.js'))) as DetectModule;
  const out: ConvertResult[] = [];
  for (const n of sizes) {
    const bytes = index(n);
    const r: ConvertResult = { descriptors: n, indexBytes: bytes.length, convertMs: [], restoreMs: [] };
    for (let i = 0; i < iterations + 2; i++) {
      let t0 = performance.now();
      const detection = detect.classifyManifest(bytes, undefined);
      if (detection.kind !== 'cache') throw new Error(`generated index of ${n} is ${detection.kind}`);
      const converted = convert.toImageManifest(detection.index, bytes, 'application/vnd.regshim.buildkit.cache.index.v1+json');
      if (!convert.isRebuildable(converted, bytes)) throw new Error(`generated index of ${n} cannot be rebuilt`);
      const convertMs = performance.now() - t0;
      t0 = performance.now();
      const ref = convert.readConvertedManifest(converted.bytes);
      const restored = convert.restoreIndex(ref, bytes);
      const restoreMs = performance.now() - t0;
      if (!restored.equals(bytes)) throw new Error('restore gave other bytes');
      if (i >= 2) { // two warm-up rounds: JIT
        r.convertMs.push(convertMs);
        r.restoreMs.push(restoreMs);
      }
    }
    out.push(r);
  }
  return out;
}
