// `regshim doctor`: can regshim work in front of this registry, with these credentials, in
// this repository? Exit 0 when it can, 1 when not. Bad usage (2) is the CLI's.
import { randomBytes } from 'node:crypto';
import type { Config } from '../config.js';
import { connectRegistry } from '../registry/client.js';
import { OciError } from '../registry/errors.js';
import { BUILDKIT_CACHE_CONFIG } from '../registry/media-types.js';
import type { Output } from '../report/text.js';
import { doctorFacts, isWorkable, provenPush } from './facts.js';
import { credentialFacts, reach, regshimFacts, tlsFacts } from './gather.js';
import { type ProbeRun, runProbes } from './probes.js';
import { doctorJson, doctorText } from './render.js';
import { makeSmallCache } from './small-cache.js';

export interface DoctorOptions {
  repository: string;
  /** A running regshim to ask about itself. */
  regshim: URL | undefined;
}

export async function runDoctor(config: Config, opts: DoctorOptions, out: Output): Promise<number> {
  const { repository } = opts;
  const reached = await reach(config.upstream, config);
  const tls = await tlsFacts(config.upstream, config.upstreamCa);
  const connection = connectRegistry(config);
  try {
    const credentials = await credentialFacts(connection, repository);
    let probes: ProbeRun | undefined;
    if (reached.reach.ok && credentials.pull.ok) {
      const nonce = randomBytes(6).toString('hex');
      probes = await runProbes(connection.upstream, repository, makeSmallCache(nonce, new Date().toISOString()), `regshim-doctor-${nonce}`, { indexMediaType: config.indexMediaType, buildkitTypes: [BUILDKIT_CACHE_CONFIG, config.indexMediaType] }).catch((err: unknown) => {
        if (!(err instanceof OciError)) throw err;
        // The registry went away or fell silent mid-probe: said as a failed upload.
        return { upload: { ok: false, status: err.status, refusal: { code: err.code, message: err.message } }, results: [], leftovers: [] };
      });
    }
    const regshim = opts.regshim ? await regshimFacts(opts.regshim) : undefined;
    const proven = { ...credentials, push: provenPush(credentials, probes) };
    const report = doctorFacts({ upstream: config.upstream.origin, repository, cacheForm: config.cacheForm, reach: reached.reach, tls, challenge: reached.challenge, credentials: proven, probes, regshim });
    out.write(out.json ? doctorJson(report) : doctorText(report, out.color));
    return isWorkable(report) ? 0 : 1;
  } finally {
    await connection.close();
  }
}
