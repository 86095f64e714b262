// What distribution reads besides the query string. Its handlers read `mount` and `from`
// with Go's r.FormValue, which also parses a form body on POST, PUT and PATCH, and a body
// value wins over the query: a mount's source could hide there from the allow-list. No
// registry client sends a form, so regshim refuses one on every registry request rather
// than parse bodies the way Go does.
import type { IncomingHttpHeaders } from 'node:http';

/** The bodies Go's ParseMultipartForm reads as form values (ParseForm, multipartReader). */
const FORM_MEDIA_TYPES: ReadonlySet<string> = new Set(['application/x-www-form-urlencoded', 'multipart/form-data']);

/**
 * Why distribution could read form values that regshim does not see, or undefined. Go's
 * mime.ParseMediaType takes the text before the first `;`, trimmed and lower-cased (a bad
 * parameter still yields the type); its lower-casing is Unicode's (`İ` becomes `i`), so a
 * Content-Type beyond ASCII is refused too. Go's url.ParseQuery drops a pair holding `;`,
 * and before Go 1.17 split on it: the query regshim checks must be the query Go reads.
 */
export function formValuesRefusal(headers: IncomingHttpHeaders, query: string): string | undefined {
  const contentType = headers['content-type'];
  if (contentType !== undefined) {
    if (!/^[\t\x20-\x7e]*$/.test(contentType)) return 'Content-Type must be ASCII';
    if (FORM_MEDIA_TYPES.has(mediaTypeOf(contentType))) {
      return `a registry request must not carry a form body (Content-Type ${mediaTypeOf(contentType)}): distribution would read its fields as query parameters`;
    }
  }
  if (query.includes(';')) return 'a registry query must not hold ";" (Go reads it as a separator, or drops the pair)';
  return undefined;
}

/** The media type of an ASCII Content-Type as Go reads it: before the first `;`, trimmed, lower case. */
export function mediaTypeOf(contentType: string): string {
  const semicolon = contentType.indexOf(';');
  return (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
}
