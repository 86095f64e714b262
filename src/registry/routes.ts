// The URL grammar of the OCI distribution spec ("Pulling", "Pushing", "Content discovery").

const NAME_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME = `${NAME_COMPONENT}(?:/${NAME_COMPONENT})*`;
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const SHA256_RE = /^sha256:[a-f0-9]{64}$/;
const SHA512_RE = /^sha512:[a-f0-9]{128}$/;

const ROUTE_RE = new RegExp(`^/v2/(${NAME})/(manifests|blobs|tags|referrers)/(.*)$`);

export type Route =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'upload'; name: string; session: string | undefined }
  | { kind: 'tags'; name: string }
  | { kind: 'referrers'; name: string; digest: string }
  | { kind: 'other' };

/** Classifies a request path (without its query). Unknown paths are 'other' and pass through. */
export function parseRoute(pathname: string): Route {
  if (pathname === '/v2/' || pathname === '/v2') return { kind: 'base' };
  if (pathname === '/v2/_catalog') return { kind: 'catalog' };
  const m = ROUTE_RE.exec(pathname);
  if (!m) return { kind: 'other' };
  const name = m[1] as string;
  const rest = m[3] as string;
  switch (m[2]) {
    case 'manifests':
      return rest !== '' && !rest.includes('/') ? { kind: 'manifest', name, reference: rest } : { kind: 'other' };
    case 'blobs':
      if (rest === 'uploads/' || rest === 'uploads') return { kind: 'upload', name, session: undefined };
      if (rest.startsWith('uploads/')) return { kind: 'upload', name, session: rest.slice('uploads/'.length) };
      return rest !== '' && !rest.includes('/') ? { kind: 'blob', name, digest: rest } : { kind: 'other' };
    case 'tags':
      return rest === 'list' ? { kind: 'tags', name } : { kind: 'other' };
    default:
      return rest !== '' && !rest.includes('/') ? { kind: 'referrers', name, digest: rest } : { kind: 'other' };
  }
}

export function isDigest(reference: string): boolean {
  return DIGEST_RE.test(reference);
}

export function isTag(reference: string): boolean {
  return TAG_RE.test(reference);
}

/**
 * A digest regshim can verify: sha256 or sha512 with the right length of lowercase hex
 * (image-spec "Digests", registered algorithms).
 */
export function isVerifiableDigest(digest: string): boolean {
  return SHA256_RE.test(digest) || SHA512_RE.test(digest);
}

/** Only the manifests path carries logic; the hot path asks this before any parsing. */
export function isManifestPath(pathname: string): boolean {
  return pathname.includes('/manifests/');
}
