// What `regshim inspect` is given: a manifest URL (http://host/v2/<name>/manifests/<ref>) or
// an image reference (host[:port]/name:tag or @digest, as docker and crane spell it). Pure.
import { isLoopback } from '../config-auth.js';
import { isDigest, isTag, parseRoute } from '../registry/routes.js';

export interface CacheReference {
  /** The registry or regshim, origin only. */
  origin: URL;
  name: string;
  reference: string;
}

/** undefined when `text` is neither form; `plainHttp` picks http for an image reference. */
export function parseCacheReference(text: string, plainHttp: boolean): CacheReference | undefined {
  if (/^https?:\/\//.test(text)) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      return undefined;
    }
    const route = parseRoute(url.pathname);
    if (route.kind !== 'manifest' || url.search !== '' || url.username !== '' || url.password !== '') return undefined;
    return { origin: new URL(url.origin), name: route.name, reference: route.reference };
  }
  const slash = text.indexOf('/');
  if (slash <= 0) return undefined;
  const host = text.slice(0, slash);
  const rest = text.slice(slash + 1);
  const at = rest.indexOf('@');
  const colon = rest.lastIndexOf(':');
  const [path, reference] = at >= 0 ? [rest.slice(0, at), rest.slice(at + 1)] : colon > rest.lastIndexOf('/') ? [rest.slice(0, colon), rest.slice(colon + 1)] : [rest, 'latest'];
  if (at >= 0 ? !isDigest(reference) : !isTag(reference)) return undefined;
  const route = parseRoute(`/v2/${path}/manifests/${reference}`);
  if (route.kind !== 'manifest') return undefined;
  // Like docker and crane: a registry on this machine speaks plain http unless told otherwise.
  const hostname = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  const scheme = plainHttp || isLoopback(hostname) ? 'http' : 'https';
  let origin: URL;
  try {
    origin = new URL(`${scheme}://${host}`);
  } catch {
    return undefined;
  }
  return { origin, name: route.name, reference };
}
