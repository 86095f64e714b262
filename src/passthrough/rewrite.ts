// Location and Link headers that name the upstream must name regshim instead, for every
// status: upload sessions answer 202 + Location, and containerd drops its credentials when
// an upload moves to another host. URLs on other hosts (presigned S3/GCS redirects) and
// relative URLs are left as they are.
import type { IncomingHttpHeaders } from 'node:http';

const HOST_RE = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * The origin the client used to reach regshim: behind an ingress or a TLS-terminating load
 * balancer, the scheme and host it names in X-Forwarded-Proto and X-Forwarded-Host (the first,
 * the client's side). These only shape the Locations the same client is sent back.
 */
export function publicOrigin(headers: IncomingHttpHeaders, tls: boolean, fallbackHost: string): string {
  const proto = firstValue(headers['x-forwarded-proto'])?.toLowerCase();
  const forwardedHost = firstValue(headers['x-forwarded-host']);
  const scheme = proto === 'http' || proto === 'https' ? proto : tls ? 'https' : 'http';
  const host = forwardedHost !== undefined && HOST_RE.test(forwardedHost) ? forwardedHost
    : headers.host !== undefined && HOST_RE.test(headers.host) ? headers.host : fallbackHost;
  return `${scheme}://${host}`;
}

function firstValue(value: string | string[] | undefined): string | undefined {
  const first = (Array.isArray(value) ? value[0] : value)?.split(',')[0]?.trim();
  return first === '' ? undefined : first;
}

export function rewriteUrl(value: string, upstream: URL, origin: string): string {
  if (!/^https?:\/\//i.test(value)) return value;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return value;
  }
  if (url.origin !== upstream.origin) return value;
  // Keep the path and query as the upstream wrote them: URL would re-encode them.
  return origin + (/^[a-z]+:\/\/[^/?#]*(.*)$/is.exec(value)?.[1] ?? '');
}

/** Link: <url>; rel="next", possibly several, comma-separated (RFC 8288). */
export function rewriteLink(value: string, upstream: URL, origin: string): string {
  return value.replace(/<([^>]*)>/g, (_, url: string) => `<${rewriteUrl(url, upstream, origin)}>`);
}

/** Rewrites the Location and Link headers of an upstream response in place. */
export function rewriteResponseHeaders(headers: Record<string, string | string[] | undefined>, upstream: URL, origin: string): void {
  const location = headers.location;
  if (typeof location === 'string') headers.location = rewriteUrl(location, upstream, origin);
  const link = headers.link;
  if (typeof link === 'string') headers.link = rewriteLink(link, upstream, origin);
  else if (Array.isArray(link)) headers.link = link.map((l) => rewriteLink(l, upstream, origin));
}
