// PUT of /v2/<name>/manifests/<ref>. A cache is stored in the form chosen for the upstream
// (forms/form-choice.ts, forms/stored-forms.ts): an index or list becomes regshim's BuildKit form
// (convert.ts) or the image form (forms/image-form.ts), after its exact bytes are stored as a
// blob; BuildKit's own image manifest goes as it is, or in the image form. With --cache-form
// auto, a PUT the upstream refuses for its media types is sent again in the image form.
// For BuildKit's image manifest, the index made from it is stored as a blob first. Other
// manifests pass unchanged.
import type { Request, Response } from 'express';
import { contextOf, markAction } from '../observability/access-log.js';
import { OciError } from '../registry/errors.js';
import { BUILDKIT_CACHE_CONFIG, OCI_MANIFEST } from '../registry/media-types.js';
import { isDigest } from '../registry/routes.js';
import { upstreamRefusalOf } from '../registry/upstream-refusal.js';
import { type UpstreamResponse, forwardedRequestHeaders, header } from '../registry/upstream.js';
import { algorithmOf, digestWith, importLimitProblems, isRebuildable, registryLimitProblems, toImageManifest } from './convert.js';
import type { Config } from '../config.js';
import type { CacheContext } from './context.js';
import type { KnownIndex } from './digest-map.js';
import type { WrittenForm } from './forms/form-choice.js';
import { toImageForm } from './forms/image-form.js';
import { knownMadeIndex } from './lookup.js';
import { type Pushed, classifyPushed } from './forms/stored-forms.js';

type PushedCache = Extract<Pushed, { kind: 'index' | 'buildkit-manifest' }>;

/** One stored form of a pushed cache, ready to write: blobs first, then the manifest. */
interface PreparedWrite {
  readonly form: WrittenForm;
  /** BuildKit's image manifest in BuildKit's form: the client's own PUT, forwarded. */
  readonly asPushed: boolean;
  readonly manifestBytes: Buffer;
  readonly manifestDigest: string;
  readonly blobs: { digest: string; bytes: Buffer }[];
  /** Media types only BuildKit's form sends, that an allow-listing registry names when it refuses. */
  readonly buildkitTypes: string[];
  readonly rebuildable: boolean;
  readonly limitProblems: string[];
  /** Why BuildKit will refuse to import the cache stored this way (its 1 MiB limits). */
  readonly importProblems: string[];
}

/**
 * The stored form of a pushed cache, keeping only what the upstream calls need, so the
 * parsed cache (several times the size of its bytes) is garbage before the first await.
 */
function prepareWrite(cache: PushedCache, body: Buffer, form: WrittenForm, reference: string, indexLayerMediaType: string): PreparedWrite {
  // A PUT by digest names its algorithm; the pushed bytes are stored under it (lookup by sha512 works).
  const algorithm = isDigest(reference) ? algorithmOf(reference) : 'sha256';
  if (form === 'image') {
    const built = toImageForm(cache.parts, body, algorithm);
    return {
      form,
      asPushed: false,
      manifestBytes: built.bytes,
      manifestDigest: built.digest,
      blobs: [{ digest: built.originalBlob.digest, bytes: body }, built.configBlob],
      buildkitTypes: [],
      rebuildable: false,
      limitProblems: registryLimitProblems(built.bytes, built.layerCount),
      importProblems: importLimitProblems(cache.parts, body),
    };
  }
  if (cache.kind === 'buildkit-manifest') {
    const importProblems = importLimitProblems(cache.parts, body);
    return { form, asPushed: true, manifestBytes: body, manifestDigest: digestWith(algorithm, body), blobs: [], buildkitTypes: [BUILDKIT_CACHE_CONFIG], rebuildable: true, limitProblems: [], importProblems };
  }
  const converted = toImageManifest(cache.index, body, indexLayerMediaType, algorithm);
  return {
    form,
    asPushed: false,
    manifestBytes: converted.bytes,
    manifestDigest: converted.digest,
    blobs: [{ digest: converted.indexBlob.digest, bytes: body }],
    buildkitTypes: [BUILDKIT_CACHE_CONFIG, indexLayerMediaType],
    rebuildable: isRebuildable(converted, body),
    limitProblems: registryLimitProblems(converted.bytes, converted.manifest.layers.length),
    // BuildKit >= 0.12 reads this form straight from the registry: the manifest counts too.
    importProblems: importLimitProblems(cache.parts, body, converted),
  };
}

/** A cache PUT, prepared: what it keeps whatever the form, and its first write. */
interface PreparedPush {
  /** The pushed bytes' digest (by the algorithm the client named) and type. */
  readonly digest: string;
  readonly mediaType: string;
  readonly descriptors: number;
  /** For BuildKit's image manifest: the index importers get (forms/made-index.ts). */
  readonly made: KnownIndex | undefined;
  readonly write: PreparedWrite;
}

/**
 * Classifies and prepares a manifest PUT; undefined for one regshim leaves alone. Keeps no
 * parsed document: an async PUT holds what it keeps until the upstream has answered.
 */
function preparePush(body: Buffer, contentType: string | undefined, reference: string, form: WrittenForm, config: Config): PreparedPush | undefined {
  const cache = classifyPushed(body, contentType);
  if (cache.kind === 'invalid') throw new OciError('MANIFEST_INVALID', 'the BuildKit cache index is malformed', cache.detail);
  if (cache.kind === 'not-cache') return undefined;
  // BuildKit's image manifest is left alone only when regshim has nothing to do for it.
  if (cache.kind === 'buildkit-manifest' && !config.imageManifestAsIndex && config.cacheForm === 'buildkit') return undefined;
  const digest = digestWith(isDigest(reference) ? algorithmOf(reference) : 'sha256', body);
  if (isDigest(reference) && digest !== reference) {
    throw new OciError('DIGEST_INVALID', 'the manifest body does not match the digest in the URL', { reference, actual: digest });
  }
  return {
    digest,
    mediaType: cache.parts.mediaType,
    descriptors: cache.parts.layers.length + 1,
    made: cache.kind === 'buildkit-manifest' && config.imageManifestAsIndex ? knownMadeIndex(cache.made, digest) : undefined,
    write: prepareWrite(cache, body, form, reference, config.indexMediaType),
  };
}

/** The image form of a cache whose first write was refused: parsed again, as nothing parsed was kept. */
function prepareImageForm(body: Buffer, reference: string, config: Config): PreparedWrite {
  const cache = classifyPushed(body, undefined);
  if (cache.kind !== 'index' && cache.kind !== 'buildkit-manifest') throw new Error('a cache PUT classifies as a cache again');
  return prepareWrite(cache, body, 'image', reference, config.indexMediaType);
}

export function createPutHandler(ctx: CacheContext) {
  const { config, map, log, metrics, forms } = ctx;
  const { call, clientHeaders, sendUpstream, storeBlob } = ctx.exchange;

  async function putCache(req: Request, res: Response, name: string, reference: string, body: Buffer, push: PreparedPush): Promise<void> {
    const { digest, made } = push;
    const logFields = { reqId: contextOf(req)?.id, repo: name, ref: reference, indexDigest: digest, descriptors: push.descriptors };
    let write = push.write;
    for (const problem of write.importProblems) {
      metrics.importLimit.inc();
      log.warn({ ...logFields, problem }, 'cache stored, but BuildKit will not import it: every build that reads it will miss');
    }
    // The index old importers will be given, stored first with the pusher's credentials, so
    // that any replica finds it by digest as soon as the manifest is there (lookup.ts).
    if (made) await ctx.lookup.storeMadeIndex(req, res, name, made, 'push');
    let up = await writeForm(req, res, name, reference, write, { ...logFields, manifestDigest: write.manifestDigest });
    if (!isStored(up) && write.form === 'buildkit' && forms.switchesAfter(up, write.buildkitTypes)) {
      write = prepareImageForm(body, reference, config);
      up = await writeForm(req, res, name, reference, write, { ...logFields, manifestDigest: write.manifestDigest });
    }
    if (!isStored(up)) {
      markAction(req, 'refused');
      return sendUpstream(req, res, up);
    }
    // In the image form the manifest stands for the pushed bytes; the made index points at it too.
    if (made) map.remember(write.asPushed ? made : { ...made, source: 'made-from-stored', manifestDigest: write.manifestDigest });
    if (write.asPushed) {
      if (made) markAction(req, 'made');
      return sendUpstream(req, res, up);
    }
    map.remember({ kind: 'index', source: 'stored', indexDigest: digest, manifestDigest: write.manifestDigest, mediaType: push.mediaType, bytes: body, descriptors: push.descriptors, rebuildable: write.rebuildable });
    metrics.conversions.inc({ direction: 'in' });
    markAction(req, 'converted');
    log.info({ ...logFields, manifestDigest: write.manifestDigest, form: write.form, direction: 'in' }, 'cache index converted');
    // 201, never 202 (containerd fails on it), with the digest the client computed itself.
    res.writeHead(201, {
      'docker-content-digest': digest,
      location: `/v2/${name}/manifests/${digest}`,
      'content-length': '0',
      'docker-distribution-api-version': 'registry/2.0',
    });
    res.end();
  }

  /** Uploads a form's blobs, then PUTs its manifest; the upstream's answer that ended it. */
  async function writeForm(req: Request, res: Response, name: string, reference: string, write: PreparedWrite, logFields: Record<string, unknown>): Promise<UpstreamResponse> {
    for (const blob of write.blobs) {
      const refused = await storeBlob(req, res, name, blob.digest, blob.bytes);
      if (typeof refused !== 'string') {
        log.warn({ ...logFields, blob: blob.digest, status: refused.status, ...refusalFields(refused) }, 'upstream refused a blob of the cache; nothing was converted');
        return refused;
      }
    }
    const up = write.asPushed
      ? await call(req, res, { method: 'PUT', path: req.url ?? `/v2/${name}/manifests/${reference}`, headers: forwardedRequestHeaders(req.headers), body: write.manifestBytes })
      : await call(req, res, {
          method: 'PUT',
          path: `/v2/${name}/manifests/${isDigest(reference) ? write.manifestDigest : reference}`,
          headers: clientHeaders(req, { 'content-type': OCI_MANIFEST }),
          body: write.manifestBytes,
        });
    if (!isStored(up)) {
      // Blobs uploaded stay: no manifest references them, so the registry's garbage collection
      // removes them, and deleting them here could break a concurrent push of the same cache.
      log.warn({ ...logFields, form: write.form, status: up.status, ...refusalFields(up), limits: write.limitProblems }, 'upstream refused the converted manifest');
      return up;
    }
    const storedAs = header(up.headers, 'docker-content-digest');
    if (storedAs !== undefined && storedAs !== write.manifestDigest) {
      log.warn({ ...logFields, upstreamDigest: storedAs }, 'upstream stored the manifest under another digest');
    }
    return up;
  }

  return async function put(req: Request, res: Response): Promise<void> {
    const { name, reference } = ctx.route(req);
    const body: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const push = preparePush(body, req.headers['content-type'], reference, forms.current(), config);
    if (push) return putCache(req, res, name, reference, body, push);
    const up = await call(req, res, { method: 'PUT', path: req.url ?? `/v2/${name}/manifests/${reference}`, headers: forwardedRequestHeaders(req.headers), body });
    sendUpstream(req, res, up);
  };
}

function isStored(up: UpstreamResponse): boolean {
  return up.status === 200 || up.status === 201 || up.status === 204;
}

/** The registry's own code and message for a refusal, as log fields (none when its body says nothing). */
function refusalFields(up: UpstreamResponse): { upstreamCode?: string; upstreamMessage?: string } {
  const refusal = upstreamRefusalOf(up.body);
  return refusal ? { upstreamCode: refusal.code, upstreamMessage: refusal.message } : {};
}
