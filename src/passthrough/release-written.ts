// Request bodies on their way to the upstream: each chunk Node's HTTP server hands over is a
// fresh 64 KiB buffer of its own, which V8 frees only at its next full collection, after
// tens of MiB more have piled up (docs/performance.md). Once a chunk has been written to the
// upstream socket nothing reads it again, so its memory is handed back at once.
import type { ClientRequest } from 'node:http';

type WriteCallback = (err?: Error | null) => void;

/** Frees each body chunk written through `proxyReq` as soon as the write completes. */
export function releaseWrittenChunks(proxyReq: ClientRequest): void {
  const write = proxyReq.write as (this: ClientRequest, ...args: unknown[]) => boolean;
  proxyReq.write = function (this: ClientRequest, chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
    const cb = (typeof encoding === 'function' ? encoding : callback) as WriteCallback | undefined;
    const enc = typeof encoding === 'function' ? undefined : (encoding as BufferEncoding | undefined);
    const done: WriteCallback = (err) => {
      release(chunk);
      cb?.(err);
    };
    return enc === undefined ? write.call(this, chunk, done) : write.call(this, chunk, enc, done);
  } as ClientRequest['write'];
}

/**
 * Hands a buffer's memory back now, when the buffer owns all of it and nothing will read it
 * again; otherwise leaves it to the garbage collector.
 */
export function release(chunk: unknown): void {
  // Only a buffer that owns its whole memory: a view of shared memory must stay as it is.
  if (!Buffer.isBuffer(chunk)) return;
  const memory = chunk.buffer;
  if (!(memory instanceof ArrayBuffer) || chunk.byteOffset !== 0 || chunk.byteLength !== memory.byteLength || memory.byteLength < 4096) return;
  // transfer(0) detaches it: V8 frees the old backing store now instead of at the next major
  // GC. Node 20 has no transfer(), and a buffer may refuse to detach: then it stays as it is.
  if (typeof memory.transfer !== 'function') return;
  try {
    memory.transfer(0);
  } catch {
    // not detachable: the garbage collector frees it as before
  }
}
