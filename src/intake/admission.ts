// Which manifest PUTs may be read now. A body over --max-manifest-bytes is refused from its
// Content-Length, before a byte of it is read (and before `100 Continue`); the others wait
// for room under --max-manifest-bytes-in-flight, then hold it until their answer is sent.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config.js';
import { OciError } from '../registry/errors.js';
import { answerAndClose } from './close.js';
import { ByteBudget } from './budget.js';

// What one body byte costs while it is read and converted, measured with 4 MB caches: the
// body (twice while it is gathered), its text, the parsed index, and the manifest made from it.
const HELD_PER_BODY_BYTE = 4;

export interface ManifestAdmission {
  /** True when the request may go on; false when it has been answered. */
  admit(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
  readonly budget: ByteBudget;
}

export function createManifestAdmission(config: Config): ManifestAdmission {
  const budget = new ByteBudget(config.maxManifestBytesInFlight);

  async function admit(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
    if (declared !== undefined && declared > config.maxManifestBytes) {
      refuse(req, res, new OciError('MANIFEST_TOO_LARGE', `manifest bodies are limited to ${config.maxManifestBytes} bytes (--max-manifest-bytes)`, { limit: config.maxManifestBytes, declared }));
      return false;
    }
    const controller = new AbortController();
    const onClose = () => controller.abort();
    res.once('close', onClose);
    const bytes = HELD_PER_BODY_BYTE * (declared ?? config.maxManifestBytes);
    const release = await budget.acquire(bytes, config.manifestQueueTimeoutMs, controller.signal);
    res.off('close', onClose);
    if (release === undefined) {
      if (!res.destroyed) {
        refuse(req, res, new OciError('UNAVAILABLE', `regshim is holding its limit of manifest bytes (--max-manifest-bytes-in-flight ${config.maxManifestBytesInFlight}); retry shortly`), { 'retry-after': '1' });
      }
      return false;
    }
    res.once('close', release);
    return true;
  }

  return { admit, budget };
}

/** Answers without reading the body, and closes the connection: the body is still on it. */
function refuse(req: IncomingMessage, res: ServerResponse, err: OciError, headers: Record<string, string> = {}): void {
  answerAndClose(req, res, err, headers);
}
