// Content negotiation for manifests: the Accept header (RFC 9110 section 12.5.1), as
// registries read it: a list of media types, parameters ignored.

/** The media types an Accept header names, without parameters. */
export function parseAccept(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const joined = Array.isArray(value) ? value.join(',') : value;
  return joined
    .split(',')
    .map((part) => (part.split(';')[0] ?? '').trim().toLowerCase())
    .filter((t) => t !== '');
}

export function accepts(accepted: string[], type: string): boolean {
  return accepted.includes(type) || accepted.includes('*/*');
}

/** The Accept header with `type` added, unless it already names it. */
export function withType(accept: string | string[] | undefined, type: string): string {
  const list = parseAccept(accept);
  const base = Array.isArray(accept) ? accept.join(', ') : (accept ?? '');
  if (list.includes(type)) return base;
  return base === '' ? type : `${base}, ${type}`;
}
