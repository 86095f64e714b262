// The small cache doctor pushes to see what a registry accepts: one gzip layer (a tar with
// one file holding a nonce, so no digest is shared with anything else in the repository and
// deleting its blobs afterwards cannot hurt another cache), a cacheconfig naming it, and the
// index BuildKit would write for them. Pure: the nonce and the time come in.
import { gzipSync } from 'node:zlib';
import { sha256 } from '../cache/convert.js';
import { goDescriptor, goMarshal } from '../cache/go-json.js';
import type { SmallCache } from '../inspect/forms.js';
import { BUILDKIT_CACHE_CONFIG, OCI_INDEX } from '../registry/media-types.js';

const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

export function makeSmallCache(nonce: string, createdAt: string): SmallCache {
  const tar = tarOf('regshim-doctor', Buffer.from(`${nonce}\n`));
  const layer = gzipSync(tar);
  const layerDigest = sha256(layer);
  const cacheconfig = Buffer.from(
    goMarshal({
      layers: [{ blob: layerDigest, parent: -1 }],
      records: [{ layers: [{ layer: 0, createdAt }], digest: sha256(Buffer.from(`regshim-doctor ${nonce}`)) }],
    }),
  );
  const index = Buffer.from(
    goMarshal({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        goDescriptor({ mediaType: OCI_LAYER_GZIP, digest: layerDigest, size: layer.length, annotations: { 'buildkit/createdat': createdAt, 'containerd.io/uncompressed': sha256(tar) } }),
        goDescriptor({ mediaType: BUILDKIT_CACHE_CONFIG, digest: sha256(cacheconfig), size: cacheconfig.length }),
      ],
    }),
  );
  return { index, layer, cacheconfig };
}

/** A ustar archive of one regular file (POSIX.1-1988 "ustar Interchange Format"). */
function tarOf(name: string, content: Buffer): Buffer {
  const header = Buffer.alloc(512);
  const field = (offset: number, length: number, value: string) => header.write(value, offset, length, 'ascii');
  const octal = (n: number, length: number) => n.toString(8).padStart(length - 1, '0');
  field(0, 100, name);
  field(100, 8, octal(0o644, 8));
  field(108, 8, octal(0, 8));
  field(116, 8, octal(0, 8));
  field(124, 12, octal(content.length, 12));
  field(136, 12, octal(0, 12));
  field(148, 8, ' '.repeat(8));
  field(156, 1, '0');
  field(257, 6, 'ustar');
  field(263, 2, '00');
  let sum = 0;
  for (const byte of header) sum += byte;
  field(148, 8, `${octal(sum, 7)}\0`);
  const padded = Buffer.alloc(Math.ceil(content.length / 512) * 512);
  content.copy(padded);
  return Buffer.concat([header, padded, Buffer.alloc(1024)]);
}
