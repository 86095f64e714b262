// The HTTP/1.1 response syntax the blob relay needs (RFC 9112): the head, how the body is
// framed, and chunked decoding. Pure: bytes in, data out. Strict on purpose: anything this
// does not understand is refused, and the client gets an error instead of a wrong body.

export interface ResponseHead {
  status: number;
  /** Lower-case names; hop-by-hop headers removed (Content-Length kept); repeated headers joined (set-cookie kept apart). */
  headers: Record<string, string | string[]>;
  /** The framing headers, read before they were removed. */
  contentLength: string | undefined;
  transferEncoding: string | undefined;
  /** The upstream closes the connection after this response (Connection: close, or HTTP/1.0). */
  close: boolean;
}

export type BodyFraming = 'none' | 'length' | 'chunked' | 'until-close';

const MAX_HEAD_BYTES = 64 * 1024;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: [^\r\n]*)?$/;
// Content-Length stays: the client gets the same framing (Node then sends the body as is).
const DROPPED = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'trailer']);

/** Collects bytes until a whole response head is there, then parses it. */
export class HeadParser {
  private parts: Buffer[] = [];
  private length = 0;

  /** consumed: how many bytes of `data` belong to the head (the rest is body). */
  push(data: Buffer): { head?: ResponseHead; consumed: number; error?: string } {
    // The end of the head may straddle the previous piece: search from 3 bytes before.
    const previous = this.length;
    const all = previous === 0 ? data : Buffer.concat([...this.parts, data]);
    const end = all.indexOf('\r\n\r\n', Math.max(0, previous - 3));
    if (end === -1) {
      if (all.length > MAX_HEAD_BYTES) return { consumed: data.length, error: `head larger than ${MAX_HEAD_BYTES} bytes` };
      // Copy: `data` lives in a buffer that is about to be reused.
      this.parts.push(Buffer.from(data));
      this.length += data.length;
      return { consumed: data.length };
    }
    this.parts = [];
    this.length = 0;
    const consumed = end + 4 - previous;
    const parsed = parseHead(all.subarray(0, end).toString('latin1'));
    return typeof parsed === 'string' ? { consumed, error: parsed } : { head: parsed, consumed };
  }
}

function parseHead(text: string): ResponseHead | string {
  const lines = text.split('\r\n');
  const status = STATUS_LINE.exec(lines[0] ?? '');
  if (!status) return `bad status line ${JSON.stringify((lines[0] ?? '').slice(0, 100))}`;
  const headers: Record<string, string | string[]> = {};
  let contentLength: string | undefined;
  let transferEncoding: string | undefined;
  let connection = '';
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).toLowerCase();
    if (colon < 1 || !TOKEN.test(name) || /[\r\n\0]/.test(line)) return `bad header line ${JSON.stringify(line.slice(0, 100))}`;
    const value = line.slice(colon + 1).trim();
    if (name === 'content-length') {
      if (contentLength !== undefined && contentLength !== value) return 'conflicting Content-Length headers';
      contentLength = value;
    } else if (name === 'connection') {
      connection += `${value.toLowerCase()},`;
    } else if (name === 'transfer-encoding') {
      transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`;
    }
    if (DROPPED.has(name)) continue;
    const prior = headers[name];
    if (prior === undefined) headers[name] = name === 'set-cookie' ? [value] : value;
    else if (Array.isArray(prior)) prior.push(value);
    else headers[name] = `${prior}, ${value}`;
  }
  const http10 = (lines[0] ?? '').startsWith('HTTP/1.0');
  const close = /(^|[\s,])close[\s,]/.test(connection) || (http10 && !/(^|[\s,])keep-alive[\s,]/.test(connection));
  return { status: Number(status[1]), headers, contentLength, transferEncoding, close };
}

/** How the body of a response to `method` is delimited; length for 'length'. An error for what is refused. */
export function framingOf(head: ResponseHead, method: string): { kind: BodyFraming; length: number } | { error: string } {
  if (method === 'HEAD' || head.status === 204 || head.status === 304 || (head.status >= 100 && head.status < 200)) return { kind: 'none', length: 0 };
  if (head.transferEncoding !== undefined) {
    // Content-Length alongside Transfer-Encoding is how requests get smuggled: refuse it.
    if (head.contentLength !== undefined) return { error: 'both Transfer-Encoding and Content-Length' };
    const codings = head.transferEncoding.split(',').map((c) => c.trim().toLowerCase());
    return codings.at(-1) === 'chunked' && codings.length === 1 ? { kind: 'chunked', length: 0 } : { error: `unsupported Transfer-Encoding ${head.transferEncoding}` };
  }
  if (head.contentLength !== undefined) {
    if (!/^\d{1,15}$/.test(head.contentLength)) return { error: `bad Content-Length ${JSON.stringify(head.contentLength)}` };
    const length = Number(head.contentLength);
    return length === 0 ? { kind: 'none', length: 0 } : { kind: 'length', length };
  }
  return { kind: 'until-close', length: 0 };
}

/**
 * Decodes a chunked body as it arrives, piece by piece. Pieces are views of the input, so
 * the caller keeps the input alive until they are written. Chunk extensions and trailers
 * are read and dropped.
 */
export class ChunkedDecoder {
  private state: 'size' | 'data' | 'data-end' | 'trailer' | 'done' = 'size';
  private line = '';
  private left = 0;

  /** rest: bytes after the end of the body (0 when the connection can be reused). */
  push(input: Buffer): { pieces: Buffer[]; complete: boolean; rest: number; error?: string } {
    const pieces: Buffer[] = [];
    let i = 0;
    while (i < input.length && this.state !== 'done') {
      if (this.state === 'data') {
        const n = Math.min(this.left, input.length - i);
        pieces.push(input.subarray(i, i + n));
        i += n;
        this.left -= n;
        if (this.left === 0) this.state = 'data-end';
        continue;
      }
      // size, data-end and trailer are lines: collect up to LF.
      const lf = input.indexOf(10, i);
      const chunk = input.subarray(i, lf === -1 ? input.length : lf + 1).toString('latin1');
      i += chunk.length;
      this.line += chunk;
      if (this.line.length > 4096) return { pieces, complete: false, rest: 0, error: 'chunk line too long' };
      if (lf === -1) break;
      const line = this.line;
      this.line = '';
      if (!line.endsWith('\r\n')) return { pieces, complete: false, rest: 0, error: 'bare LF' };
      const content = line.slice(0, -2);
      if (this.state === 'data-end') {
        if (content !== '') return { pieces, complete: false, rest: 0, error: 'missing CRLF after chunk data' };
        this.state = 'size';
      } else if (this.state === 'size') {
        const size = /^([0-9a-fA-F]{1,12})[ \t]*(?:;.*)?$/.exec(content);
        if (!size) return { pieces, complete: false, rest: 0, error: `bad chunk size ${JSON.stringify(content.slice(0, 40))}` };
        this.left = parseInt(size[1]!, 16);
        this.state = this.left === 0 ? 'trailer' : 'data';
      } else if (content === '') {
        this.state = 'done';
      }
    }
    return { pieces, complete: this.state === 'done', rest: input.length - i };
  }
}
