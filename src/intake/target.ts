// The request target (RFC 9112 section 3.2), checked before anything routes on it.
// regshim routes on the raw path, while http-proxy and express read it through the WHATWG
// URL parser, which resolves dot segments (also as %2e), turns `\` into `/` and throws on
// some absolute forms. So only canonical targets pass: what regshim routes on is exactly
// what the upstream receives.

export type Target =
  | { readonly ok: true; readonly path: string; readonly pathname: string }
  | { readonly ok: false; readonly status: 400 | 404; readonly reason: string };

// RFC 3986 pchar, plus "/" between segments; "%" is checked on its own below.
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;
// Printable ASCII but what the URL parser would re-encode in a query (space " # ' < >).
const QUERY_CHARS = /^[!$%&()*+,\-./0-9:;=?@A-Z[\\\]^_`a-z{|}~]*$/;
// Escapes that decode to a dot, a slash, a backslash or a control character.
const RISKY_ESCAPE = /%(?:2e|2f|5c|[01][0-9a-f]|7f)/i;
const ABSOLUTE_FORM = /^https?:\/\/[^/?#]*/i;

/**
 * Checks a raw request target. The absolute form (`http://host/v2/...`, which clients must
 * send to forward proxies and servers must accept) becomes its path; the authority is not
 * used, since regshim fronts exactly one upstream.
 */
export function parseTarget(raw: string): Target {
  let path = raw;
  const absolute = ABSOLUTE_FORM.exec(raw);
  if (absolute) path = raw.slice(absolute[0].length) || '/';
  if (!path.startsWith('/')) return refuse(400, 'the request target must be a path (origin form) or an absolute URL');
  const q = path.indexOf('?');
  const pathname = q === -1 ? path : path.slice(0, q);
  const query = q === -1 ? '' : path.slice(q + 1);
  if (!PATH_CHARS.test(pathname) || !QUERY_CHARS.test(query)) {
    return refuse(400, 'the request target has characters that must be percent-encoded');
  }
  if (/%(?![0-9a-fA-F]{2})/.test(path) || RISKY_ESCAPE.test(pathname)) {
    return refuse(400, 'the request path has a malformed escape, or an escaped dot, slash, backslash or control character');
  }
  const segments = pathname.split('/').slice(1);
  if (segments.some((s, i) => s === '.' || s === '..' || (s === '' && i < segments.length - 1))) {
    return refuse(400, 'the request path is not canonical (dot segments or empty segments)');
  }
  // The last word belongs to the parser the proxy uses: anything it would change is refused.
  if (!sameForUrlParser(path)) return refuse(400, 'the request target is not canonical');
  return { ok: true, path, pathname };
}

function sameForUrlParser(path: string): boolean {
  try {
    const url = new URL(path, 'http://base.invalid');
    return url.pathname + url.search === path || url.pathname + url.search + '?' === path;
  } catch {
    return false;
  }
}

function refuse(status: 400 | 404, reason: string): Target {
  return { ok: false, status, reason };
}

/** The registry API, the only thing that passes to the upstream. */
export function isRegistryApi(pathname: string): boolean {
  return pathname === '/v2' || pathname.startsWith('/v2/');
}
