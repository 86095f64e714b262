import { BUILDKIT_CACHE_CONFIG, INDEX_TYPES, MANIFEST_TYPES } from '../registry/media-types.js';
import { isVerifiableDigest } from '../registry/routes.js';

/** An OCI descriptor as BuildKit writes it; unknown fields are kept as they are. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  [field: string]: unknown;
}

export interface CacheIndex {
  /** The index's own media type: OCI index or Docker manifest list. */
  mediaType: string;
  /** The entries in their original order, the cacheconfig among them. */
  manifests: Descriptor[];
  config: Descriptor;
  /** Every entry but the cacheconfig, in order. */
  layers: Descriptor[];
}

export type Detection =
  | { kind: 'not-cache' }
  | { kind: 'cache'; index: CacheIndex }
  | { kind: 'invalid'; detail: string };

const NOT_CACHE: Detection = { kind: 'not-cache' };
const MAX_DEPTH = 64;

/**
 * Is this manifest body a BuildKit cache index? It is when its media type (from the body,
 * else from Content-Type) is an OCI index or Docker list, and its entries are blobs, not
 * manifests. Such a body that is malformed is 'invalid', with the reason; every other body
 * is 'not-cache' and goes to the upstream untouched.
 */
export function classifyManifest(body: Uint8Array, contentType: string | undefined): Detection {
  const headerType = contentType?.split(';')[0]?.trim().toLowerCase();
  const claimsCache = () => mentionsCacheConfig(body) || (headerType !== undefined && INDEX_TYPES.has(headerType));
  // V8 parses any depth without recursion; what reads the document afterwards (describing
  // a problem, serializing the manifest) recurses, and a cache index nests four levels deep.
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch (err) {
    if (!claimsCache()) return NOT_CACHE;
    return nestsDeeperThan(body, MAX_DEPTH) ? tooDeep() : { kind: 'invalid', detail: `body is not valid JSON: ${(err as Error).message}` };
  }
  if (nestingExceeds(doc, MAX_DEPTH)) return claimsCache() ? tooDeep() : NOT_CACHE;
  if (!isObject(doc)) return NOT_CACHE;
  const mediaType = typeof doc.mediaType === 'string' ? doc.mediaType : headerType;
  if (mediaType === undefined || !INDEX_TYPES.has(mediaType)) return NOT_CACHE;
  const entries = doc.manifests;
  if (!Array.isArray(entries) || entries.length === 0) return NOT_CACHE;
  if (!entries.every(looksLikeCacheEntry)) return NOT_CACHE;

  // From here on the body is meant as a cache: every defect is reported, nothing is forwarded.
  if (doc.schemaVersion !== 2) return invalid(`schemaVersion must be 2, got ${show(doc.schemaVersion)}`);
  if (!entries.every(isValidDescriptor)) {
    const problems = entries.flatMap((entry, i) => descriptorProblems(entry, `manifests[${i}]`));
    return invalid(problems.slice(0, 10).join('; '));
  }

  const manifests = entries as Descriptor[];
  const configs = manifests.filter((d) => d.mediaType === BUILDKIT_CACHE_CONFIG);
  if (configs.length !== 1) {
    return invalid(`a cache index needs exactly one ${BUILDKIT_CACHE_CONFIG} entry, found ${configs.length}`);
  }
  const config = configs[0] as Descriptor;
  return { kind: 'cache', index: { mediaType, manifests, config, layers: manifests.filter((d) => d !== config) } };
}

/** A blob entry (a layer or the cacheconfig), as opposed to a manifest of a real multi-arch index. */
function looksLikeCacheEntry(entry: unknown): boolean {
  if (!isObject(entry)) return true; // malformed: reported once the index is known to be a cache
  const type = entry.mediaType;
  if (typeof type !== 'string') return true;
  if (MANIFEST_TYPES.has(type)) return false;
  return type === BUILDKIT_CACHE_CONFIG || /layer|rootfs/.test(type);
}

/** descriptorProblems(entry) is empty; asked first, as it allocates nothing. */
function isValidDescriptor(entry: unknown): boolean {
  if (!isObject(entry)) return false;
  const { mediaType, digest, size, annotations } = entry;
  return typeof mediaType === 'string' && mediaType !== '' && typeof digest === 'string' && isVerifiableDigest(digest)
    && Number.isSafeInteger(size) && (size as number) >= 0 && (annotations === undefined || isStringMap(annotations));
}

function isStringMap(value: unknown): boolean {
  if (!isObject(value)) return false;
  for (const key in value) if (typeof value[key] !== 'string') return false;
  return true;
}

function descriptorProblems(entry: unknown, where: string): string[] {
  if (!isObject(entry)) return [`${where} is not an object`];
  const out: string[] = [];
  if (typeof entry.mediaType !== 'string' || entry.mediaType === '') out.push(`${where}.mediaType is missing`);
  if (typeof entry.digest !== 'string') out.push(`${where}.digest is missing`);
  else if (!isVerifiableDigest(entry.digest)) out.push(`${where}.digest ${show(entry.digest)} is not a valid sha256 or sha512 digest`);
  if (!Number.isSafeInteger(entry.size) || (entry.size as number) < 0) {
    out.push(`${where}.size ${show(entry.size)} is not a non-negative integer`);
  }
  if (entry.annotations !== undefined) {
    if (!isStringMap(entry.annotations)) {
      out.push(`${where}.annotations must map strings to strings`);
    }
  }
  return out;
}

/** Does the JSON text open more than `limit` arrays and objects inside one another? */
export function nestsDeeperThan(body: Uint8Array, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}

/** Does a parsed document hold arrays and objects more than `limit` deep? Iterative. */
export function nestingExceeds(doc: unknown, limit: number): boolean {
  const values: unknown[] = [doc];
  const depths: number[] = [1];
  while (values.length > 0) {
    const value = values.pop();
    const depth = depths.pop() as number;
    if (typeof value !== 'object' || value === null) continue;
    if (depth > limit) return true;
    for (const child of Array.isArray(value) ? value : Object.values(value)) {
      if (typeof child === 'object' && child !== null) {
        values.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return false;
}

function tooDeep(): Detection {
  return invalid(`the JSON nests deeper than ${MAX_DEPTH} levels; a cache index nests 4`);
}

/** A value as a problem message quotes it: short, whatever its size. */
function show(value: unknown): string {
  const text = typeof value === 'object' && value !== null ? (Array.isArray(value) ? 'an array' : 'an object') : JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function mentionsCacheConfig(body: Uint8Array): boolean {
  return Buffer.from(body.buffer, body.byteOffset, body.byteLength).includes(BUILDKIT_CACHE_CONFIG);
}

function invalid(detail: string): Detection {
  return { kind: 'invalid', detail };
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
