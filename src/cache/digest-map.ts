// Digests both ways, in memory, bounded by bytes. The registry stays the source of truth:
// every entry can be rebuilt from it, so a miss costs upstream requests, never a wrong answer.
// Entries are keyed by digest alone: content-addressed, so they never go stale. Tags move
// and are never cached here.
import { LRUCache } from 'lru-cache';
import type { IndexReference } from './convert.js';

/**
 * Where an index comes from: 'stored', pushed by a client and kept upstream (its bytes in a
 * blob, a manifest standing for it); 'made' from BuildKit's own image-manifest cache
 * (forms/made-index.ts), which alone decides whether the index exists; 'made-from-stored' made
 * likewise from BuildKit's image manifest that a client pushed and regshim keeps in the
 * image form (the manifest stands for that pushed manifest, not for this index).
 */
export type IndexSource = 'stored' | 'made' | 'made-from-stored';

export function isMade(source: IndexSource): boolean {
  return source !== 'stored';
}

/** A cache index regshim knows: its bytes and the manifest that stands for it upstream. */
export interface KnownIndex {
  readonly kind: 'index';
  readonly source: IndexSource;
  readonly indexDigest: string;
  readonly manifestDigest: string;
  readonly mediaType: string;
  readonly bytes: Buffer;
  /** How many entries the index has, for the conversion log. */
  readonly descriptors: number;
  /** Can the index be rebuilt from its manifest alone, should its blob be gone? */
  readonly rebuildable: boolean;
}

/** What regshim knows of a manifest digest: a converted cache (and which index), or not one. */
export type KnownManifest =
  | { readonly kind: 'converted'; readonly source: IndexSource; readonly ref: IndexReference; readonly rebuildable: boolean }
  | { readonly kind: 'plain' };

/** An index digest whose manifest is known, before its bytes are (after a HEAD by tag). */
export interface IndexPointer {
  readonly source: IndexSource;
  readonly manifestDigest: string;
  readonly ref: IndexReference;
  readonly rebuildable: boolean;
}

type Entry = KnownIndex | KnownManifest | (IndexPointer & { readonly kind: 'pointer' });

const ENTRY_OVERHEAD = 256;

export interface DigestMapEvents {
  hit(kind: string, digest: string): void;
  miss(kind: string, digest: string): void;
}

export class DigestMap {
  private readonly lru: LRUCache<string, Entry>;
  // One load per key: concurrent misses for a digest share one upstream load. Kept apart from
  // the LRU so that an entry set meanwhile (a push finishing) never cancels a load in flight.
  private readonly loading = new Map<string, Promise<KnownIndex | KnownManifest>>();

  constructor(
    maxBytes: number,
    private readonly events: DigestMapEvents,
    private readonly maxIndexBytes = 1 << 20,
  ) {
    this.lru = new LRUCache<string, Entry>({
      maxSize: maxBytes,
      sizeCalculation: (entry) => ENTRY_OVERHEAD + (entry.kind === 'index' ? entry.bytes.length : 0),
    });
  }

  /**
   * Records a conversion: the index by its digest, the manifest by its own. An index larger
   * than `maxIndexBytes` keeps only its pointer: BuildKit cannot import one over 1 MiB anyway,
   * and a few of them would push every useful entry out.
   */
  remember(index: KnownIndex): void {
    const ref = { indexDigest: index.indexDigest, indexMediaType: index.mediaType, indexSize: index.bytes.length };
    if (index.bytes.length <= this.maxIndexBytes) this.lru.set(index.indexDigest, index);
    else this.lru.set(index.indexDigest, { kind: 'pointer', source: index.source, manifestDigest: index.manifestDigest, ref, rebuildable: index.rebuildable });
    // A manifest stands for one pushed cache: an index made from what it keeps is known by its own digest only.
    if (index.source !== 'made-from-stored') this.lru.set(index.manifestDigest, { kind: 'converted', source: index.source, ref, rebuildable: index.rebuildable });
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
    return this.index(digest) ?? this.fetchIndex(digest, load);
  }

  /** loadIndex for a caller that has just looked the digest up with index() and missed. */
  async fetchIndex(digest: string, load: () => Promise<KnownIndex>): Promise<KnownIndex> {
    const loaded = await this.once(digest, load);
    if (loaded.kind !== 'index') throw new Error(`digest ${digest} is not an index`);
    if (this.lru.peek(digest)?.kind !== 'index') this.remember(loaded);
    return loaded;
  }

  /** What a manifest digest stands for, loaded once however many requests miss together. */
  async loadManifest(digest: string, load: () => Promise<KnownManifest>): Promise<KnownManifest> {
    const entry = this.lru.get(digest);
    if (entry?.kind === 'converted' || entry?.kind === 'plain') {
      this.count('manifest', digest, true);
      return entry;
    }
    this.count('manifest', digest, false);
    const loaded = await this.once(digest, load);
    this.lru.set(digest, loaded);
    // A client that resolved the tag asks for the index by digest next: know where it lives.
    if (loaded.kind === 'converted' && this.lru.peek(loaded.ref.indexDigest) === undefined) {
      this.lru.set(loaded.ref.indexDigest, { kind: 'pointer', source: loaded.source, manifestDigest: digest, ref: loaded.ref, rebuildable: loaded.rebuildable });
    }
    return loaded;
  }

  /** The manifest that stands for an index digest, when known, with or without the index bytes. */
  manifestOf(indexDigest: string): IndexPointer | undefined {
    const entry = this.lru.get(indexDigest);
    if (entry?.kind === 'pointer') return entry;
    if (entry?.kind === 'index') {
      return {
        source: entry.source,
        manifestDigest: entry.manifestDigest,
        ref: { indexDigest, indexMediaType: entry.mediaType, indexSize: entry.bytes.length },
        rebuildable: entry.rebuildable,
      };
    }
    return undefined;
  }

  get size(): number {
    return this.lru.calculatedSize;
  }

  private once<T extends KnownIndex | KnownManifest>(key: string, load: () => Promise<T>): Promise<T> {
    const pending = this.loading.get(key);
    if (pending) return pending as Promise<T>;
    const started = load().finally(() => this.loading.delete(key));
    this.loading.set(key, started);
    return started;
  }

  private count(kind: string, digest: string, hit: boolean): void {
    if (hit) this.events.hit(kind, digest);
    else this.events.miss(kind, digest);
  }
}
