// What `regshim inspect` says about a cache, worked out from bytes already fetched: the two
// forms, sizes, import compatibility, and every problem regshim knows how to spot. Pure.
import { BUILDKIT_IMPORT_LIMIT, ECR_MAX_LAYERS, REGISTRY_MAX_MANIFEST_BYTES, sha256 } from '../cache/convert.js';
import type { Descriptor } from '../cache/detect.js';
import { type BuildKitRange, type CacheForm, type FormReading } from './forms.js';
import type { RecordLoss } from './records.js';

export type Severity = 'error' | 'warning';

/** Stable codes: tools match on them (docs/inspect-and-doctor.md). */
export type ProblemCode =
  | 'OVER_IMPORT_LIMIT'
  | 'OVER_MANIFEST_SIZE'
  | 'OVER_LAYER_LIMIT'
  | 'INDEX_UNAVAILABLE'
  | 'BLOBS_MISSING'
  | 'BLOBS_UNCHECKED'
  | 'REFUSED_BY_STRICT_REGISTRIES'
  | 'REFUSED_BY_ALLOW_LISTS'
  | 'OLD_BUILDKIT_MISSES';

export interface Problem {
  code: ProblemCode;
  severity: Severity;
  message: string;
}

export interface FormFacts {
  form: string;
  label: string;
  /** Made by regshim from the stored form (an index from BuildKit's image manifest), not pushed. */
  made: boolean;
  mediaType: string;
  digest: string;
  size: number;
}

export interface BlobCheck {
  checked: number;
  missing: string[];
  /** Blobs whose HEAD answered neither 200 nor 404, with the status. */
  unchecked: { digest: string; status: number }[];
  /** undefined when the cacheconfig itself could not be read. */
  records: RecordLoss | undefined;
}

export interface InspectReport {
  reference: string;
  stored: FormFacts;
  /** What a client gets back through regshim; undefined when it cannot be had. */
  served: FormFacts | undefined;
  layers: number;
  /** Bytes of the distinct layer blobs and the cacheconfig. */
  cacheBytes: number;
  /** The newest `buildkit/createdat` of the layers; undefined when none says. */
  newestLayer: string | undefined;
  importedBy: { throughRegshim: readonly BuildKitRange[]; fromRegistry: readonly BuildKitRange[] };
  blobs: BlobCheck | undefined;
  problems: Problem[];
}

export interface FetchedForm {
  form: CacheForm;
  reading: FormReading;
  bytes: Buffer;
  /** The digest the registry gave; the bytes' own otherwise. */
  digest?: string | undefined;
  /** An index regshim makes from BuildKit's image manifest. */
  made?: boolean;
}

export interface InspectInput {
  reference: string;
  stored: FetchedForm;
  /** The served form; a string says why it could not be had. */
  served: FetchedForm | string;
  blobs?: BlobCheck | undefined;
}

export function inspectFacts(input: InspectInput): InspectReport {
  const { stored } = input;
  const served = typeof input.served === 'string' ? undefined : input.served;
  // The cache itself as a client gets it; as stored when it cannot be had.
  const reading = (served ?? stored).reading;
  const problems: Problem[] = [];
  if (typeof input.served === 'string') problems.push({ code: 'INDEX_UNAVAILABLE', severity: 'error', message: input.served });
  problems.push(...sizeProblems(stored, served));
  problems.push(...formWarnings(stored.form, served?.form));
  if (input.blobs) problems.push(...blobProblems(input.blobs));
  return {
    reference: input.reference,
    stored: factsOf(stored),
    served: served && factsOf(served),
    layers: reading.layers.length,
    cacheBytes: cacheBytes(reading),
    newestLayer: newestLayer(reading.layers),
    importedBy: { throughRegshim: served?.form.importedBy ?? [], fromRegistry: stored.form.importedBy },
    blobs: input.blobs,
    problems,
  };
}

/** Is the cache whole and importable? (exit 0) */
export function isHealthy(report: InspectReport): boolean {
  return report.problems.every((p) => p.severity !== 'error');
}

function factsOf(f: FetchedForm): FormFacts {
  return { form: f.form.id, label: f.form.label, made: f.made === true, mediaType: f.reading.mediaType, digest: f.digest ?? sha256(f.bytes), size: f.bytes.length };
}

function cacheBytes(reading: FormReading): number {
  const sizes = new Map<string, number>();
  for (const d of [...reading.layers, reading.config]) sizes.set(d.digest, typeof d.size === 'number' ? d.size : 0);
  let total = 0;
  for (const size of sizes.values()) total += size;
  return total;
}

/** RFC 3339 times compare as strings only at equal precision: compare them as instants, keep the text. */
function newestLayer(layers: Descriptor[]): string | undefined {
  let newest: { text: string; at: number; nanos: string } | undefined;
  for (const layer of layers) {
    const text = layer.annotations?.['buildkit/createdat'];
    if (typeof text !== 'string') continue;
    const at = Date.parse(text);
    if (Number.isNaN(at)) continue;
    const nanos = (/\.(\d+)/.exec(text)?.[1] ?? '').padEnd(9, '0');
    if (!newest || at > newest.at || (at === newest.at && nanos > newest.nanos)) newest = { text, at, nanos };
  }
  return newest?.text;
}

function sizeProblems(stored: FetchedForm, served: FetchedForm | undefined): Problem[] {
  const out: Problem[] = [];
  const mib = (n: number) => `${(n / 1024 / 1024).toFixed(2)} MiB`;
  const overImport = (what: string, size: number) =>
    out.push({ code: 'OVER_IMPORT_LIMIT', severity: 'error', message: `${what} is ${size} bytes (${mib(size)}), over BuildKit's import limit of 1 MiB: every import misses, without an error` });
  if (served && served.bytes.length > BUILDKIT_IMPORT_LIMIT) overImport(`the ${served.form.label} a client gets`, served.bytes.length);
  else if (!served && stored.bytes.length > BUILDKIT_IMPORT_LIMIT) overImport(`the stored ${stored.form.label}`, stored.bytes.length);
  const config = (served ?? stored).reading.config.size;
  if (typeof config === 'number' && config > BUILDKIT_IMPORT_LIMIT) overImport('the cacheconfig', config);
  if (stored.bytes.length > REGISTRY_MAX_MANIFEST_BYTES) {
    out.push({ code: 'OVER_MANIFEST_SIZE', severity: 'error', message: `the stored manifest is ${stored.bytes.length} bytes: ECR and others refuse manifests over ${REGISTRY_MAX_MANIFEST_BYTES} (4 MiB)` });
  }
  const layers = stored.reading.manifestLayers;
  if (layers > ECR_MAX_LAYERS) {
    out.push({ code: 'OVER_LAYER_LIMIT', severity: 'error', message: `the stored manifest has ${layers} layers: ECR refuses more than about ${ECR_MAX_LAYERS}` });
  }
  return out;
}

function formWarnings(stored: CacheForm, served: CacheForm | undefined): Problem[] {
  const out: Problem[] = [];
  if (!stored.strictRegistriesStore) {
    out.push({ code: 'REFUSED_BY_STRICT_REGISTRIES', severity: 'warning', message: `${stored.label}: ECR, GCR, Quay, Harbor and distribution 3 refuse to store it; push it through regshim there` });
  } else if (!stored.allowListRegistriesStore && stored.writtenAs === undefined) {
    // regshim's own forms need no warning: --cache-form auto moves to the image form where refused.
    out.push({ code: 'REFUSED_BY_ALLOW_LISTS', severity: 'warning', message: `${stored.label}: registries that allow-list media types (Quay, GitLab) refuse its config type` });
  }
  if (!(served ?? stored).importedBy.includes('0.8-0.11')) {
    out.push({ code: 'OLD_BUILDKIT_MISSES', severity: 'warning', message: 'BuildKit 0.8-0.11 (Docker 20.10-24) ignores this form: no cache hits, no error' });
  }
  return out;
}

function blobProblems(blobs: BlobCheck): Problem[] {
  const out: Problem[] = [];
  if (blobs.missing.length > 0) {
    const records = blobs.records ? `; ${blobs.records.losingLayers} of ${blobs.records.records} cache records lose their layers` : '; the cacheconfig is gone, so every record is';
    out.push({ code: 'BLOBS_MISSING', severity: 'error', message: `${blobs.missing.length} of ${blobs.checked} blobs are gone from the registry (a lifecycle policy or garbage collection?)${records}: imports get fewer hits, without an error` });
  }
  if (blobs.unchecked.length > 0) {
    out.push({ code: 'BLOBS_UNCHECKED', severity: 'error', message: `${blobs.unchecked.length} blobs could not be checked: ${blobs.unchecked.map((b) => `${b.digest} answered ${b.status}`).join(', ')}` });
  }
  return out;
}
