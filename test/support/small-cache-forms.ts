// Every stored form of doctor's small cache (src/doctor/small-cache.ts), for tests that push
// each form at a registry: its manifest, and every blob it names, the cache's own first.
import { sha256 } from '../../src/cache/convert.js';
import { type BuiltForm, type StoredForm, buildStoredForm } from '../../src/cache/forms/stored-forms.js';
import { makeSmallCache } from '../../src/doctor/small-cache.js';
import type { SmallCache } from '../../src/inspect/forms.js';

const STORED_FORMS: readonly StoredForm[] = ['buildkit-image-manifest', 'regshim-buildkit', 'regshim-image'];

/** The same bytes on every call: a fixed nonce and time. */
export function testSmallCache(): SmallCache {
  return makeSmallCache('regshim-test', '2025-01-01T00:00:00Z');
}

export function smallCacheForms(indexLayerMediaType: string): Record<StoredForm, BuiltForm> {
  const cache = testSmallCache();
  const own = [cache.layer, cache.cacheconfig].map((bytes) => ({ digest: sha256(bytes), bytes }));
  const built = STORED_FORMS.map((form): [StoredForm, BuiltForm] => {
    const b = buildStoredForm(form, cache.index, { indexLayerMediaType });
    if (!b) throw new Error(`the small cache has no ${form} form`);
    return [form, { ...b, blobs: [...own, ...b.blobs] }];
  });
  return Object.fromEntries(built) as Record<StoredForm, BuiltForm>;
}
