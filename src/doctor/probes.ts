// doctor's probes: the small cache pushed into the named repository in each form that has a
// probe, under tags of doctor's own, then removed (manifests by digest, then blobs) where the
// registry allows DELETE. What the registry refused, and what could not be removed, is kept.
import { sha256 } from '../cache/convert.js';
import { mediaTypeRefusal } from '../cache/forms/form-choice.js';
import { type CacheForm, type SmallCache, knownForms } from '../inspect/forms.js';
import { type UpstreamRefusal, upstreamRefusalOf } from '../registry/upstream-refusal.js';
import { type Upstream, type UpstreamResponse, header, resolveLocation } from '../registry/upstream.js';

export interface ProbeResult {
  form: string;
  label: string;
  accepted: boolean;
  /** The status of the manifest PUT (or of the blob upload that failed before it). */
  status: number;
  /** The registry's own words when it refused. */
  refusal: UpstreamRefusal | undefined;
  /** When the refusal is about media types (cache/forms/form-choice.ts): the registry's reason, detail included. */
  mediaTypes: string | undefined;
}

export interface ProbeRun {
  /** Could doctor upload the small cache's blobs at all (push access)? */
  upload: { ok: boolean; status: number; refusal: UpstreamRefusal | undefined };
  results: ProbeResult[];
  /** What is still in the repository after the clean-up, with why. */
  leftovers: { what: string; status: number; refusal: UpstreamRefusal | undefined }[];
}

const MAX_BODY = 1 << 20;

export async function runProbes(upstream: Upstream, repository: string, cache: SmallCache, tagPrefix: string, options: { indexMediaType: string; buildkitTypes: readonly string[] }): Promise<ProbeRun> {
  const blobs = new Map<string, Buffer>([[sha256(cache.layer), cache.layer], [sha256(cache.cacheconfig), cache.cacheconfig]]);
  const results: ProbeResult[] = [];
  const stored: { tag: string; digest: string }[] = [];
  let upload: ProbeRun['upload'] = { ok: true, status: 201, refusal: undefined };
  try {
    for (const blob of blobs.values()) {
      const failed = await pushBlob(upstream, repository, blob);
      if (failed) {
        upload = { ok: false, status: failed.status, refusal: upstreamRefusalOf(failed.body) };
        return { upload, results, leftovers: await cleanUp(upstream, repository, stored, blobs) };
      }
    }
    for (const form of knownForms()) {
      if (!form.probe) continue;
      const result = await probe(upstream, repository, form, cache, `${tagPrefix}-${form.id}`, options, blobs);
      results.push(result.result);
      if (result.stored) stored.push(result.stored);
    }
  } catch (err) {
    await cleanUp(upstream, repository, stored, blobs);
    throw err;
  }
  return { upload, results, leftovers: await cleanUp(upstream, repository, stored, blobs) };
}

async function probe(upstream: Upstream, repository: string, form: CacheForm, cache: SmallCache, tag: string, options: { indexMediaType: string; buildkitTypes: readonly string[] }, blobs: Map<string, Buffer>) {
  const built = (form.probe as NonNullable<CacheForm['probe']>)(cache, { indexMediaType: options.indexMediaType });
  for (const blob of built.extraBlobs) {
    if (blobs.has(sha256(blob))) continue; // uploaded for another form already
    blobs.set(sha256(blob), blob);
    const failed = await pushBlob(upstream, repository, blob);
    if (failed) return { result: { form: form.id, label: form.label, accepted: false, status: failed.status, refusal: upstreamRefusalOf(failed.body), mediaTypes: undefined } };
  }
  const put = await upstream.request({
    method: 'PUT',
    path: `/v2/${repository}/manifests/${tag}`,
    headers: { 'content-type': built.mediaType },
    body: built.manifest,
    maxBodyBytes: MAX_BODY,
  });
  const accepted = put.status === 201 || put.status === 200 || put.status === 204;
  const result: ProbeResult = {
    form: form.id,
    label: form.label,
    accepted,
    status: put.status,
    refusal: accepted ? undefined : upstreamRefusalOf(put.body),
    mediaTypes: accepted ? undefined : mediaTypeRefusal(put.status, put.body, options.buildkitTypes),
  };
  return { result, stored: accepted ? { tag, digest: header(put.headers, 'docker-content-digest') ?? sha256(built.manifest) } : undefined };
}

/** POST + monolithic PUT, as BuildKit uploads; undefined once stored, else the refusal. */
async function pushBlob(upstream: Upstream, repository: string, blob: Buffer): Promise<UpstreamResponse | undefined> {
  const digest = sha256(blob);
  const post = await upstream.request({ method: 'POST', path: `/v2/${repository}/blobs/uploads/`, headers: { 'content-length': '0' }, maxBodyBytes: MAX_BODY });
  const location = header(post.headers, 'location');
  if (post.status !== 202 || location === undefined) return post;
  const url = resolveLocation(location, new URL(upstream.origin));
  url.searchParams.set('digest', digest);
  const put = await upstream.request({
    method: 'PUT',
    path: url.origin === upstream.origin ? url.pathname + url.search : url.href,
    headers: { 'content-type': 'application/octet-stream' },
    body: blob,
    maxBodyBytes: MAX_BODY,
  });
  return put.status === 201 ? undefined : put;
}

/** Manifests first (a blob a manifest names may not be deletable), then every blob doctor uploaded. */
async function cleanUp(upstream: Upstream, repository: string, stored: { tag: string; digest: string }[], blobs: Map<string, Buffer>): Promise<ProbeRun['leftovers']> {
  const leftovers: ProbeRun['leftovers'] = [];
  const remove = async (what: string, path: string) => {
    const res = await upstream.request({ method: 'DELETE', path, headers: {}, maxBodyBytes: MAX_BODY }).catch(() => undefined);
    if (res && (res.status === 202 || res.status === 200 || res.status === 204 || res.status === 404)) return;
    leftovers.push({ what, status: res?.status ?? 0, refusal: res ? upstreamRefusalOf(res.body) : undefined });
  };
  for (const { tag, digest } of stored) await remove(`manifest ${repository}:${tag} (${digest})`, `/v2/${repository}/manifests/${digest}`);
  for (const digest of blobs.keys()) await remove(`blob ${digest}`, `/v2/${repository}/blobs/${digest}`);
  return leftovers;
}
