// Which form regshim stores caches in upstream (stored-forms.ts): --cache-form buildkit or
// image, or auto: BuildKit's form, which BuildKit also reads without regshim, until the
// upstream refuses it for its media types; then the image form, kept for this upstream for
// the life of the process (each replica learns it with one refused PUT of its own).
import type { Logger } from '../../observability/log.js';
import type { Metrics } from '../../observability/metrics.js';
import type { UpstreamResponse } from '../../registry/upstream.js';

export type CacheFormMode = 'auto' | 'buildkit' | 'image';
export const CACHE_FORM_MODES: readonly CacheFormMode[] = ['auto', 'buildkit', 'image'];
export type WrittenForm = 'buildkit' | 'image';

export type FormChoice = ReturnType<typeof createFormChoice>;

export function createFormChoice(mode: CacheFormMode, upstream: string, log: Logger, metrics: Metrics) {
  let current: WrittenForm = mode === 'image' ? 'image' : 'buildkit';
  return {
    current: (): WrittenForm => current,
    /**
     * The upstream refused a manifest in BuildKit's form. True when the same PUT should be
     * sent again in the image form: in auto mode, when the refusal is about media types.
     */
    switchesAfter(up: UpstreamResponse, sentTypes: readonly string[]): boolean {
      if (mode !== 'auto') return false;
      const reason = mediaTypeRefusal(up.status, up.body, sentTypes);
      if (reason === undefined) return false;
      if (current === 'buildkit') {
        current = 'image';
        metrics.formSwitches.inc();
        log.warn({ upstream, status: up.status, reason }, "the upstream refuses BuildKit's cache form for its media types: caches are stored in the image form from now on");
      }
      return true;
    },
  };
}

const MEDIA_TYPE_WORDING = /unknown media ?type|media ?type[^.]*not (?:supported|allowed|accepted)|unsupported media ?type|is not one of/i;

/**
 * Is this refusal of a manifest PUT about its media types? The registry's reason when it
 * is, else undefined. 415 always is. A 400 is when an error with code MANIFEST_INVALID or
 * UNSUPPORTED names a type regshim sent that only BuildKit's form uses, or says so in the
 * words of registries that allow-list (GitLab: "unknown media type: <type>"; Quay:
 * "'<type>' is not one of [...]"). Anything else (401, 403, 413, a missing blob) is not.
 */
export function mediaTypeRefusal(status: number, body: Buffer, sentTypes: readonly string[]): string | undefined {
  if (status === 415) return body.toString('utf8').slice(0, 500) || 'Unsupported Media Type';
  if (status !== 400) return undefined;
  let errors: unknown;
  try {
    errors = (JSON.parse(body.toString('utf8')) as { errors?: unknown }).errors;
  } catch {
    return undefined;
  }
  if (!Array.isArray(errors)) return undefined;
  for (const e of errors as { code?: unknown; message?: unknown; detail?: unknown }[]) {
    if (e.code !== 'MANIFEST_INVALID' && e.code !== 'UNSUPPORTED') continue;
    const text = [e.message, e.detail].filter((t) => t !== undefined).map((t) => (typeof t === 'string' ? t : JSON.stringify(t))).join(': ');
    if (MEDIA_TYPE_WORDING.test(text) || sentTypes.some((t) => text.includes(t))) return text.slice(0, 500);
  }
  return undefined;
}
