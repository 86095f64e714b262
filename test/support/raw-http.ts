// HTTP/1.1 written by hand on a TCP socket: framing that no well-behaved client library
// would send (smuggling attempts, odd targets, pipelining, slow and stalled clients).
import net from 'node:net';

export interface RawExchange {
  /** Every byte the server sent, as latin1 text (byte for byte). */
  text: string;
  bytes: Buffer;
  /** Did the server close the connection before the wait ended? */
  closed: boolean;
  /** Milliseconds from connect to close (or to the end of the wait). */
  elapsedMs: number;
}

export interface RawOptions {
  /** How long to wait for the server to close, in ms (default 3000). */
  waitMs?: number;
  /** Stop waiting once this many responses have fully arrived (default: wait for close). */
  responses?: number;
  /** Parts written one after another, this far apart (ms), for slow clients. */
  gapMs?: number;
}

/** Writes `parts` to host:port and collects what comes back until the server closes or the wait ends. */
export function rawExchange(url: string, parts: (string | Buffer)[] | string, opts: RawOptions = {}): Promise<RawExchange> {
  const { hostname, port } = new URL(url);
  const chunks: Buffer[] = [];
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), hostname);
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const bytes = Buffer.concat(chunks);
      resolve({ text: bytes.toString('latin1'), bytes, closed, elapsedMs: performance.now() - started });
    };
    const timer = setTimeout(() => finish(false), opts.waitMs ?? 3000);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (opts.responses !== undefined && parseResponses(Buffer.concat(chunks)).length >= opts.responses) finish(false);
    });
    socket.on('close', () => finish(true));
    socket.on('error', () => undefined); // a reset shows as 'close'
    const list = typeof parts === 'string' ? [parts] : parts;
    void (async () => {
      for (const [i, part] of list.entries()) {
        if (i > 0 && opts.gapMs) await new Promise((r) => setTimeout(r, opts.gapMs));
        if (done || socket.destroyed) return;
        socket.write(part);
      }
    })();
  });
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Splits what a server sent into complete responses (Content-Length framing, as regshim answers). */
export function parseResponses(bytes: Buffer, headRequests = 0): RawResponse[] {
  const out: RawResponse[] = [];
  let at = 0;
  while (at < bytes.length) {
    const end = bytes.indexOf('\r\n\r\n', at);
    if (end === -1) break;
    const head = bytes.subarray(at, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head[0] ?? '')?.[1] ?? NaN);
    const headers: Record<string, string> = {};
    for (const line of head.slice(1)) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const informational = status >= 100 && status < 200;
    const length = informational || out.length < headRequests ? 0 : Number(headers['content-length'] ?? 0);
    if (end + 4 + length > bytes.length) break;
    out.push({ status, headers, body: bytes.subarray(end + 4, end + 4 + length) });
    at = end + 4 + length;
  }
  return out;
}
