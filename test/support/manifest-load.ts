// Cache manifest PUTs that load regshim's memory: large valid cache indexes, sent slowly, so
// that many are read at once, and the peak resident set they cause.
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import { goMarshal } from '../../src/cache/go-json.js';

/**
 * A valid cache index of about `bytes`, made from `index` (a cache index whose layers the
 * registry has): its layers repeated with padded annotations, distinct for each `salt`.
 */
export function bigIndex(index: Buffer, bytes: number, salt: string): Buffer {
  const doc = JSON.parse(index.toString()) as { manifests: { mediaType: string; annotations?: Record<string, string> }[] };
  const config = doc.manifests.at(-1)!;
  const pad = Math.min(2000, Math.max(0, Math.floor(bytes / 4) - 400));
  const layers = doc.manifests.slice(0, -1).map((l) => ({ ...l, annotations: { ...l.annotations, 'x.pad': `${salt}${'p'.repeat(pad)}` } }));
  const perLayer = Buffer.byteLength(JSON.stringify(layers[0]));
  const copies = Math.max(1, Math.floor((bytes - 1000) / perLayer));
  doc.manifests = [...Array.from({ length: copies }, (_, i) => layers[i % layers.length]!), config];
  return Buffer.from(goMarshal(doc));
}

/** PUT in 64 KiB pieces, one every 30 ms (a 4 MB body takes about two seconds); the status. */
export function slowPut(url: string, body: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.index.v1+json', 'content-length': body.length } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    let at = 0;
    const step = () => {
      if (at >= body.length) return void req.end();
      req.write(body.subarray(at, at + 64 * 1024));
      at += 64 * 1024;
      setTimeout(step, 30);
    };
    step();
  });
}

/** Starts a new peak (VmHWM) at the current RSS: proc(5), /proc/PID/clear_refs. */
export async function resetPeak(pid: number): Promise<void> {
  await writeFile(`/proc/${pid}/clear_refs`, '5');
}
