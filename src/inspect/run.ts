// `regshim inspect <ref>`: fetch, work out the facts, print them, and say by the exit status
// whether the cache is whole and importable (0), or not (1). Bad usage (2) is the CLI's.
import type { Config } from '../config.js';
import { connectRegistry } from '../registry/client.js';
import { OciError } from '../registry/errors.js';
import { inspectFacts, isHealthy } from './facts.js';
import { InspectError, fetchCache } from './fetch.js';
import { type Output, jsonText } from '../report/text.js';
import type { CacheReference } from './reference.js';
import { INSPECT_SCHEMA, inspectJson, inspectText } from './render.js';

export interface InspectOptions {
  checkBlobs: boolean;
  concurrency: number;
}

export async function runInspect(config: Config, ref: CacheReference, opts: InspectOptions, out: Output): Promise<number> {
  const connection = connectRegistry(config);
  try {
    const input = await fetchCache(connection.upstream, ref.name, ref.reference, { maxManifestBytes: config.maxManifestBytes, imageManifestAsIndex: config.imageManifestAsIndex, checkBlobs: opts.checkBlobs, concurrency: opts.concurrency });
    const report = inspectFacts(input);
    out.write(out.json ? inspectJson(report) : inspectText(report, out.color));
    return isHealthy(report) ? 0 : 1;
  } catch (err) {
    if (!(err instanceof InspectError || err instanceof OciError)) throw err;
    const reference = `${ref.name}:${ref.reference}`;
    // The network's reason (ECONNREFUSED, ENOTFOUND) is in the error's detail.
    const cause = err instanceof OciError ? (err.detail as { cause?: unknown } | undefined)?.cause : undefined;
    const error = typeof cause === 'string' ? `${err.message} (${cause})` : err.message;
    out.write(out.json ? jsonText({ schema: INSPECT_SCHEMA, ok: false, reference, error }) : `${reference}: ${error}\n`);
    return 1;
  } finally {
    await connection.close();
  }
}
