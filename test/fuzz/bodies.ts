// Manifest bodies for fuzzing: mutations of the real BuildKit cache fixture (bytes and
// JSON), caches generated over blobs the registry holds (these should be stored and read
// back), caches over blobs it does not hold, deep nesting, and arbitrary JSON or bytes.
import fc from 'fast-check';
import { CACHE_CONFIG, cacheIndex } from '../support/cache-gen.js';
import { goDescriptor, goMarshal } from '../../src/cache/go-json.js';

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

export interface Body {
  kind: string;
  bytes: Buffer;
  /** undefined: no Content-Type header. */
  contentType: string | undefined;
}

export interface Blob {
  digest: string;
  size: number;
}

const MEDIA_TYPES = [
  OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, OCI_LAYER, DOCKER_LAYER, CACHE_CONFIG,
  'application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.oci.image.config.v1+json',
  'application/vnd.regshim.buildkit.cache.index.v1+json', 'application/json', 'text/plain', '',
];

/** Values that probe the validation: odd sizes, digests, types, and a little of everything. */
const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(-1, 0, 0.5, 1e21, 2 ** 53, -0, 1e-7, 2, 3, null, true, false, '', '2', [], {}),
  fc.constantFrom(...MEDIA_TYPES),
  fc.constantFrom(
    `sha256:${'a'.repeat(64)}`, `sha256:${'A'.repeat(64)}`, `sha256:${'a'.repeat(63)}`, `sha512:${'b'.repeat(128)}`,
    `sha384:${'c'.repeat(96)}`, 'sha256:', 'sha256', `md5:${'d'.repeat(32)}`, `sha256+b64:${'e'.repeat(64)}`, `sha256:${'f'.repeat(64)}\n`,
  ),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.jsonValue({ maxDepth: 2 }),
);

type Json = unknown;

/** Every (container, key) pair in a JSON document, depth first. */
function slots(doc: Json): { parent: Record<string, unknown> | unknown[]; key: string | number }[] {
  const out: { parent: Record<string, unknown> | unknown[]; key: string | number }[] = [];
  const walk = (node: Json): void => {
    if (Array.isArray(node)) {
      node.forEach((child, i) => {
        out.push({ parent: node, key: i });
        walk(child);
      });
    } else if (node !== null && typeof node === 'object') {
      for (const [k, child] of Object.entries(node)) {
        out.push({ parent: node as Record<string, unknown>, key: k });
        walk(child);
      }
    }
  };
  walk(doc);
  return out;
}

const jsonEdit = fc.record({
  at: fc.nat(),
  op: fc.constantFrom('set', 'set', 'set', 'delete', 'duplicate', 'wrap', 'stringify', 'addKey'),
  value: oddValue,
  key: fc.oneof(fc.constantFrom('mediaType', 'digest', 'size', 'annotations', 'manifests', 'schemaVersion', 'urls', 'platform', '__proto__', 'constructor'), fc.string({ maxLength: 8 })),
  inEntry: fc.integer({ min: 0, max: 9 }).map((n) => n < 8),
});

function applyEdit(doc: Json, edit: { at: number; op: string; value: unknown; key: string; inEntry: boolean }): Json {
  // Most edits land inside a descriptor: the cache stays a cache and becomes invalid, which
  // regshim must refuse on its own. The rest may make it something else, which goes upstream.
  const entries = (doc as { manifests?: unknown } | null)?.manifests;
  const inside = edit.inEntry && Array.isArray(entries) ? slots(entries).filter((s) => !Array.isArray(s.parent)) : [];
  const all = inside.length > 0 ? inside : slots(doc);
  if (all.length === 0) return edit.value;
  const { parent, key } = all[edit.at % all.length]!;
  const get = () => (parent as Record<string | number, unknown>)[key];
  const set = (v: unknown) => ((parent as Record<string | number, unknown>)[key] = v);
  switch (edit.op) {
    case 'set':
      set(edit.value);
      break;
    case 'delete':
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key as string];
      break;
    case 'duplicate':
      if (Array.isArray(parent)) parent.splice(key as number, 0, structuredClone(get()));
      break;
    case 'wrap':
      set([get()]);
      break;
    case 'stringify':
      set(JSON.stringify(get()));
      break;
    case 'addKey': {
      const target = get();
      if (target !== null && typeof target === 'object' && !Array.isArray(target)) Object.defineProperty(target, edit.key, { value: edit.value, enumerable: true, writable: true, configurable: true });
      else set(edit.value);
      break;
    }
  }
  return doc;
}

const serialise = fc.constantFrom<(v: unknown) => string>(
  (v) => goMarshal(v),
  (v) => JSON.stringify(v),
  (v) => JSON.stringify(v, null, 2),
  (v) => JSON.stringify(v, null, '\t'),
  (v) => `\ufeff${JSON.stringify(v)}`,
  (v) => ` \r\n${JSON.stringify(v)}\n\n`,
);

const contentType = (usual: string | undefined) =>
  fc.oneof(
    { weight: 8, arbitrary: fc.constant(usual) },
    { weight: 2, arbitrary: fc.constantFrom(...MEDIA_TYPES, undefined, `${OCI_INDEX}; charset=utf-8`, 'APPLICATION/VND.OCI.IMAGE.INDEX.V1+JSON') },
  );

/** JSON-level mutations of a fixture cache (index or Docker list). */
export function jsonMutation(fixtures: { bytes: Buffer; mediaType: string }[]): fc.Arbitrary<Body> {
  return fc
    .record({ fixture: fc.constantFrom(...fixtures), edits: fc.array(jsonEdit, { minLength: 2, maxLength: 5 }), out: serialise })
    .chain(({ fixture, edits, out }) =>
      contentType(fixture.mediaType).map((type) => {
        let doc: Json = JSON.parse(fixture.bytes.toString('utf8'));
        for (const edit of edits) doc = applyEdit(doc, edit);
        return { kind: `json-mutation(${edits.map((e) => e.op).join(',')})`, bytes: Buffer.from(out(doc)), contentType: type };
      }),
    );
}

const byteEdit = fc.record({
  op: fc.constantFrom('flip', 'insert', 'delete', 'truncate', 'repeat', 'set'),
  at: fc.nat(),
  len: fc.integer({ min: 1, max: 64 }),
  byte: fc.integer({ min: 0, max: 255 }),
});

/** Byte-level mutations of a fixture cache. */
export function byteMutation(fixtures: { bytes: Buffer; mediaType: string }[]): fc.Arbitrary<Body> {
  return fc.record({ fixture: fc.constantFrom(...fixtures), edits: fc.array(byteEdit, { minLength: 1, maxLength: 3 }) }).chain(({ fixture, edits }) =>
    contentType(fixture.mediaType).map((type) => {
      let b = Buffer.from(fixture.bytes);
      for (const e of edits) {
        const at = b.length === 0 ? 0 : e.at % b.length;
        if (e.op === 'flip') b[at] = (b[at] ?? 0) ^ (1 << (e.byte % 8));
        else if (e.op === 'set') b[at] = e.byte;
        else if (e.op === 'insert') b = Buffer.concat([b.subarray(0, at), Buffer.alloc(e.len, e.byte), b.subarray(at)]);
        else if (e.op === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + e.len)]);
        else if (e.op === 'truncate') b = b.subarray(0, at);
        else b = Buffer.concat([b.subarray(0, at + e.len), b.subarray(at)]);
      }
      return { kind: `byte-mutation(${edits.map((e) => e.op).join(',')})`, bytes: b, contentType: type };
    }),
  );
}

/** Caches over blobs the registry holds: regshim should store them and give them back byte for byte. */
export function storableCache(layers: Blob[], config: Blob): fc.Arbitrary<Body> {
  const text = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 12 }), fc.constantFrom('<b>&amp;</b>', '\u2028\u2029', 'élan ✓ 日本', ''));
  return fc
    .record({
      docker: fc.boolean(),
      picks: fc.array(fc.nat(), { minLength: 0, maxLength: 8 }),
      annotations: fc.array(fc.option(fc.dictionary(fc.oneof(fc.constantFrom('buildkit/createdat', 'containerd.io/uncompressed'), text), text, { maxKeys: 3 }), { nil: undefined }), { maxLength: 8 }),
      configAt: fc.nat(),
      out: fc.constantFrom<(v: unknown) => string>(goMarshal, (v) => JSON.stringify(v), (v) => JSON.stringify(v, null, 2)),
      topAnnotations: fc.option(fc.dictionary(text, text, { maxKeys: 2 }), { nil: undefined }),
    })
    .map(({ docker, picks, annotations, configAt, out, topAnnotations }) => {
      const entries = picks.map((p, i) => goDescriptor({ mediaType: docker ? DOCKER_LAYER : OCI_LAYER, ...layers[p % layers.length]!, annotations: annotations[i] }));
      entries.splice(configAt % (entries.length + 1), 0, goDescriptor({ mediaType: CACHE_CONFIG, ...config }));
      const doc: Record<string, unknown> = { schemaVersion: 2, mediaType: docker ? DOCKER_LIST : OCI_INDEX, manifests: entries };
      if (topAnnotations) doc.annotations = topAnnotations;
      return { kind: 'storable-cache', bytes: Buffer.from(out(doc)), contentType: docker ? DOCKER_LIST : OCI_INDEX };
    });
}

/** Generated caches over digests the registry does not hold (the registry refuses them). */
export function unknownBlobCache(): fc.Arbitrary<Body> {
  return cacheIndex(12).map((g) => ({ kind: `generated-cache(${g.family})`, bytes: g.bytes, contentType: g.family === 'oci' ? OCI_INDEX : DOCKER_LIST }));
}

/** Deeply nested JSON in the places a parser or serialiser recurses. */
export function deepNesting(): fc.Arbitrary<Body> {
  return fc
    .record({ depth: fc.oneof(fc.integer({ min: 100, max: 2_000 }), fc.integer({ min: 2_000, max: 200_000 })), where: fc.constantFrom('manifests', 'annotations', 'top', 'size') })
    .map(({ depth, where }) => {
      const open = where === 'annotations' ? '{"a":'.repeat(depth) : '['.repeat(depth);
      const close = where === 'annotations' ? '}'.repeat(depth) : ']'.repeat(depth);
      const nested = `${open}1${close}`;
      const text =
        where === 'top' ? nested
        : where === 'size' ? `{"schemaVersion":2,"mediaType":"${OCI_INDEX}","manifests":[{"mediaType":"${CACHE_CONFIG}","digest":"sha256:${'a'.repeat(64)}","size":${nested}}]}`
        : where === 'annotations' ? `{"schemaVersion":2,"mediaType":"${OCI_INDEX}","manifests":[{"mediaType":"${CACHE_CONFIG}","digest":"sha256:${'a'.repeat(64)}","size":1,"annotations":${nested}}]}`
        : `{"schemaVersion":2,"mediaType":"${OCI_INDEX}","manifests":${nested}}`;
      return { kind: `deep-nesting(${where}, ${depth})`, bytes: Buffer.from(text), contentType: OCI_INDEX };
    });
}

/** Anything at all: JSON values and raw bytes. */
export function arbitraryBody(): fc.Arbitrary<Body> {
  return fc.oneof(
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => ({ kind: 'json-value', bytes: Buffer.from(JSON.stringify(v) ?? 'null'), contentType: OCI_INDEX as string | undefined })) },
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 512 }).map((b) => ({ kind: 'bytes', bytes: Buffer.from(b), contentType: OCI_INDEX as string | undefined })) },
  );
}
