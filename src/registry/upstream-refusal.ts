// What a registry said when it refused a request of regshim's: the first entry of its
// distribution-spec error body ({"errors":[{"code","message","detail"}]}). Only `code` and
// `message` are kept, shortened and on one line: `detail` may echo a request, tokens and all.

export interface UpstreamRefusal {
  code: string;
  message: string;
}

const MAX_CODE = 64;
const MAX_MESSAGE = 300;

/** The registry's code and message, or undefined when the body is not an OCI error body. */
export function upstreamRefusalOf(body: Uint8Array): UpstreamRefusal | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch {
    return undefined;
  }
  const first: unknown = typeof doc === 'object' && doc !== null && Array.isArray((doc as { errors?: unknown }).errors) ? (doc as { errors: unknown[] }).errors[0] : undefined;
  if (typeof first !== 'object' || first === null) return undefined;
  const { code, message } = first as { code?: unknown; message?: unknown };
  if (typeof code !== 'string' || code === '') return undefined;
  return { code: oneLine(code, MAX_CODE), message: typeof message === 'string' ? oneLine(message, MAX_MESSAGE) : '' };
}

/** Control characters out (a log line stays one line), and at most `max` characters. */
function oneLine(text: string, max: number): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}
