// Large blobs over node:http streams, for memory bounds: the body is generated while it is
// sent and hashed while it is received, so neither side ever holds it, and back-pressure is
// the socket's own (fetch would buffer behind its own queue).
import { createHash, randomBytes } from 'node:crypto';
import http, { type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export const MiB = 1 << 20;

/** A blob made of one random chunk repeated: its digest is known without holding it. */
export interface RepeatedBlob {
  chunk: Buffer;
  count: number;
  size: number;
  digest: string;
  /** A fresh stream of the whole blob; it pushes the next chunk only when asked to. */
  stream(): Readable;
}

export function repeatedBlob(chunkBytes: number, count: number): RepeatedBlob {
  const chunk = randomBytes(chunkBytes);
  const hash = createHash('sha256');
  for (let i = 0; i < count; i++) hash.update(chunk);
  return {
    chunk,
    count,
    size: chunkBytes * count,
    digest: `sha256:${hash.digest('hex')}`,
    stream() {
      let sent = 0;
      return new Readable({
        read() {
          this.push(sent++ < count ? chunk : null);
        },
      });
    },
  };
}

export interface StreamedResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body's sha256, computed while it arrived. */
  digest: string;
  bytes: number;
  /** The first 4 KiB of the body, as text (error bodies, for messages). */
  head: string;
}

/**
 * One request on its own connection: `body` (when given) is piped into it, and the
 * response is hashed as it streams, never collected.
 */
export function streamRequest(
  url: string,
  opts: { method: string; headers?: OutgoingHttpHeaders; body?: Readable },
): Promise<StreamedResponse> {
  return new Promise<StreamedResponse>((resolve, reject) => {
    const req = http.request(url, { method: opts.method, headers: opts.headers, agent: false });
    req.once('error', reject);
    req.once('response', (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      const head: Buffer[] = [];
      let headBytes = 0;
      res.on('data', (b: Buffer) => {
        hash.update(b);
        bytes += b.length;
        if (headBytes < 4096) {
          head.push(b.subarray(0, 4096 - headBytes));
          headBytes += Math.min(b.length, 4096 - headBytes);
        }
      });
      res.once('error', reject);
      res.once('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          digest: `sha256:${hash.digest('hex')}`,
          bytes,
          head: Buffer.concat(head).toString('utf8'),
        }),
      );
    });
    if (opts.body) {
      // A failed pipeline destroys req, whose 'error' rejects the promise above.
      pipeline(opts.body, req).catch(() => undefined);
    } else {
      req.end();
    }
  });
}

/**
 * The largest peak resident set (VmHWM in /proc/<pid>/status), in bytes, of the process and
 * its children: with --workers, the primary forks the processes that move the bytes.
 */
export async function peakRssBytes(pid: number): Promise<number> {
  const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/).filter(Boolean).map(Number);
  let peak = 0;
  for (const p of [pid, ...children]) {
    const status = await readFile(`/proc/${p}/status`, 'utf8');
    const kib = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
    if (kib === undefined) throw new Error(`no VmHWM in /proc/${p}/status`);
    peak = Math.max(peak, Number(kib) * 1024);
  }
  return peak;
}
