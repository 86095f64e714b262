// Digests both ways, in memory, bounded by bytes. The registry stays the source of truth:
// every entry can be rebuilt from it, so a miss costs upstream requests, never a wrong answer.
// Entries are keyed by digest alone: content-addressed, so they never go stale. Tags move
// and are never cached here.
import { LRUCache } from 'lru-cache';
import type { IndexReference } from './convert.js';

/** A cache index regshim knows: its bytes and the manifest that stands for it upstream. */
export interface KnownIndex {
  readonly kind: 'index';
  readonly indexDigest: string;
  readonly manifestDigest: string;
  readonly mediaType: string;
  readonly bytes: Buffer;
  /** How many entries the index has, for the conversion log. */
  readonly descriptors: number;
}

/** What regshim knows of a manifest digest: a converted cache (and which index), or not one. */
export type KnownManifest = { readonly kind: 'converted'; readonly ref: IndexReference } | { readonly kind: 'plain' };

/** An index digest whose manifest is known, before its bytes are (after a HEAD by tag). */
interface IndexPointer {
  readonly kind: 'pointer';
  readonly manifestDigest: string;
  readonly ref: IndexReference;
}

type Entry = KnownIndex | KnownManifest | IndexPointer;

const ENTRY_OVERHEAD = 256;

export interface DigestMapEvents {
  hit(kind: string, digest: string): void;
  miss(kind: string, digest: string): void;
}

export class DigestMap {
  private readonly lru: LRUCache<string, Entry, () => Promise<Entry>>;

  constructor(maxBytes: number, private readonly events: DigestMapEvents) {
    this.lru = new LRUCache<string, Entry, () => Promise<Entry>>({
      maxSize: maxBytes,
      sizeCalculation: (entry) => ENTRY_OVERHEAD + (entry.kind === 'index' ? entry.bytes.length : 0),
      // One fetch per key: concurrent misses for a digest share one upstream load.
      fetchMethod: (_key, _stale, { context }) => context(),
      // A load still in flight when other entries push it out must still answer its
      // callers: without this, the evicted fetch rejects ("evicted") and the client gets 500.
      ignoreFetchAbort: true,
    });
  }

  /** Records a conversion: the index by its digest, the manifest by its own. */
  remember(index: KnownIndex): void {
    this.lru.set(index.indexDigest, index);
    this.lru.set(index.manifestDigest, {
      kind: 'converted',
      ref: { indexDigest: index.indexDigest, indexMediaType: index.mediaType, indexSize: index.bytes.length },
    });
  }

  forget(...digests: string[]): void {
    for (const d of digests) this.lru.delete(d);
  }

  index(digest: string): KnownIndex | undefined {
    const entry = this.lru.get(digest);
    const found = entry?.kind === 'index' ? entry : undefined;
    this.count('index', digest, found !== undefined);
    return found;
  }

  /** The index bytes, loaded once however many requests miss at the same time. */
  async loadIndex(digest: string, load: () => Promise<KnownIndex>): Promise<KnownIndex> {
    const known = this.index(digest);
    if (known) return known;
    if (this.lru.peek(digest)?.kind === 'pointer') this.lru.delete(digest); // fetch() would return the pointer
    const entry = await this.lru.fetch(digest, { context: load });
    if (entry?.kind !== 'index') throw new Error(`digest ${digest} is not an index`);
    this.remember(entry);
    return entry;
  }

  /** What a manifest digest stands for, loaded once however many requests miss together. */
  async loadManifest(digest: string, load: () => Promise<KnownManifest>): Promise<KnownManifest> {
    const entry = this.lru.get(digest);
    if (entry?.kind === 'converted' || entry?.kind === 'plain') {
      this.count('manifest', digest, true);
      return entry;
    }
    this.count('manifest', digest, false);
    const loaded = await this.lru.fetch(digest, { context: load });
    if (loaded === undefined || (loaded.kind !== 'converted' && loaded.kind !== 'plain')) throw new Error(`digest ${digest} is not a manifest`);
    // A client that resolved the tag asks for the index by digest next: know where it lives.
    if (loaded.kind === 'converted' && this.lru.peek(loaded.ref.indexDigest) === undefined) {
      this.lru.set(loaded.ref.indexDigest, { kind: 'pointer', manifestDigest: digest, ref: loaded.ref });
    }
    return loaded;
  }

  /** The manifest that stands for an index digest, when known, with or without the index bytes. */
  manifestOf(indexDigest: string): { manifestDigest: string; ref: IndexReference } | undefined {
    const entry = this.lru.get(indexDigest);
    if (entry?.kind === 'pointer') return entry;
    if (entry?.kind === 'index') {
      return { manifestDigest: entry.manifestDigest, ref: { indexDigest, indexMediaType: entry.mediaType, indexSize: entry.bytes.length } };
    }
    return undefined;
  }

  get size(): number {
    return this.lru.calculatedSize;
  }

  private count(kind: string, digest: string, hit: boolean): void {
    if (hit) this.events.hit(kind, digest);
    else this.events.miss(kind, digest);
  }
}
