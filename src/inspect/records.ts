// Which cache records lose their layers when blobs are missing. A cacheconfig
// (BuildKit's cache/remotecache/v1 CacheConfig) lists layers as {blob, parent} (parent is an
// index into the same list, -1 or absent for none) and records whose results name a layer:
// a result needs every blob down its parent chain. Pure.
import { isObject } from '../cache/detect.js';

export interface RecordLoss {
  records: number;
  /** Records with a result whose layer chain has a missing blob. */
  losingLayers: number;
}

/** undefined when the bytes are not a cacheconfig. */
export function recordsLosingLayers(cacheconfig: Buffer, missing: ReadonlySet<string>): RecordLoss | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(cacheconfig.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isObject(doc) || !Array.isArray(doc.layers) || !Array.isArray(doc.records)) return undefined;
  const layers = doc.layers as unknown[];
  const broken = new Map<number, boolean>();
  const isBroken = (i: number): boolean => {
    const known = broken.get(i);
    if (known !== undefined) return known;
    broken.set(i, false); // a cycle in a hand-made cacheconfig ends here
    const layer = layers[i];
    let result = false;
    if (isObject(layer)) {
      const parent = typeof layer.parent === 'number' ? layer.parent : -1;
      result = (typeof layer.blob === 'string' && missing.has(layer.blob)) || (parent >= 0 && parent < layers.length && isBroken(parent));
    }
    broken.set(i, result);
    return result;
  };
  let losingLayers = 0;
  for (const record of doc.records as unknown[]) {
    const results = isObject(record) && Array.isArray(record.layers) ? (record.layers as unknown[]) : [];
    if (results.some((r) => isObject(r) && typeof r.layer === 'number' && isBroken(r.layer))) losingLayers++;
  }
  return { records: doc.records.length, losingLayers };
}
