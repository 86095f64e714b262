// Generated BuildKit cache indexes for property tests, both media-type families.
import fc from 'fast-check';
import { goDescriptor, goMarshal } from '../../src/cache/go-json.js';

const OCI = { index: 'application/vnd.oci.image.index.v1+json', layer: 'application/vnd.oci.image.layer.v1.tar+gzip' };
const DOCKER = { index: 'application/vnd.docker.distribution.manifest.list.v2+json', layer: 'application/vnd.docker.image.rootfs.diff.tar.gzip' };
export const CACHE_CONFIG = 'application/vnd.buildkit.cacheconfig.v0';

const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);
const digest = hex64.map((h) => `sha256:${h}`);
// Unicode, HTML-sensitive characters and line separators: what Go escapes and JS does not.
const text = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 30 }), fc.constantFrom('<b>&amp;</b>', '\u2028\u2029', 'élan ✓ 日本', ''));

const layer = (family: typeof OCI) =>
  fc.record({
    mediaType: fc.constant(family.layer),
    digest,
    size: fc.nat({ max: 2 ** 40 }),
    annotations: fc.option(
      fc.dictionary(fc.oneof(fc.constantFrom('buildkit/createdat', 'containerd.io/uncompressed', 'buildkit/description'), text), text, { maxKeys: 4 }),
      { nil: undefined },
    ),
  });

export interface GeneratedIndex {
  bytes: Buffer;
  family: 'oci' | 'docker';
  layers: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> | undefined }[];
  config: { mediaType: string; digest: string; size: number };
  configPosition: number;
}

/** An index of 1 to maxLayers + 1 entries, with duplicated layers and the cacheconfig anywhere (usually last). */
export function cacheIndex(maxLayers = 5000, minLayers = 0): fc.Arbitrary<GeneratedIndex> {
  return fc
    .constantFrom(['oci', OCI] as const, ['docker', DOCKER] as const)
    .chain(([family, types]) =>
      fc.record({
        family: fc.constant(family),
        types: fc.constant(types),
        layers: fc.array(layer(types), { minLength: minLayers, maxLength: maxLayers, size: 'max' }),
        duplicates: fc.array(fc.nat(), { maxLength: 5 }),
        config: fc.record({ mediaType: fc.constant(CACHE_CONFIG), digest, size: fc.nat({ max: 2 ** 21 }) }),
        configLast: fc.boolean(),
        configAt: fc.nat(),
      }),
    )
    .map(({ family, types, layers, duplicates, config, configLast, configAt }) => {
      const all = [...layers];
      // The same blob may appear twice (same layer, two parents).
      for (const d of duplicates) if (layers.length > 0) all.push(layers[d % layers.length]!);
      const configPosition = configLast || all.length === 0 ? all.length : configAt % (all.length + 1);
      const entries = [...all.slice(0, configPosition).map(goDescriptor), goDescriptor(config), ...all.slice(configPosition).map(goDescriptor)];
      const bytes = Buffer.from(goMarshal({ schemaVersion: 2, mediaType: types.index, manifests: entries }));
      return { bytes, family, layers: all, config, configPosition };
    });
}
