// Serializes as Go's json.Marshal does (BuildKit writes every cache form with it): compact,
// HTML-sensitive characters and U+2028/2029 escaped. Field order is the caller's: build
// objects in struct-field order, map keys sorted, as Go does. Pure.
export function goMarshal(value: unknown): string {
  return goEscaped(JSON.stringify(value));
}

/** JSON text from JSON.stringify, escaped as Go escapes it. */
export function goEscaped(text: string): string {
  return GO_ESCAPED.test(text) ? escapeAsGo(text) : text; // a test is cheaper than five replaces
}

const GO_ESCAPED = /[<>&\u2028\u2029]/;

function escapeAsGo(text: string): string {
  return text
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** A descriptor in ocispec.Descriptor field order, annotation keys sorted as Go sorts map keys. */
export function goDescriptor(d: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }) {
  const out: Record<string, unknown> = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.annotations && Object.keys(d.annotations).length > 0) {
    out.annotations = Object.fromEntries(Object.entries(d.annotations).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
  return out;
}
