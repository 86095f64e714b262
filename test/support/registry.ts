// distribution 2.8 (Debian's docker-registry) on loopback, storage in a temp dir.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { httpsGet } from './tls.js';
import {
  type RunResult,
  type Started,
  freePort,
  logTail,
  makeTempDir,
  removeTempDir,
  runCommand,
  startProcess,
  waitFor,
} from './processes.js';

export interface Registry {
  /** http://127.0.0.1:PORT */
  url: string;
  /** 127.0.0.1:PORT, as image references spell it */
  host: string;
  dataDir: string;
  logFile: string;
  /**
   * `docker-registry garbage-collect --delete-untagged` while the registry is stopped, as
   * its docs require; then the registry starts again on the same address.
   */
  collectGarbage(): Promise<RunResult>;
  stop(): Promise<void>;
}

export interface RegistryOptions {
  /** Refuse manifests whose config is not an image config (403 DENIED). */
  policyImageOnly?: boolean;
  /**
   * distribution's "silly" access controller: a request without Authorization gets 401 and
   * a Bearer challenge; any Authorization passes. Enough to prove challenges and
   * credentials travel unchanged.
   */
  sillyAuth?: boolean;
  /** Basic auth against this htpasswd file (bcrypt entries only). */
  htpasswdFile?: string;
  /** Token auth: tokens from this realm, signed by the certificate in rootCertBundle. */
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  /** Refuse DELETE (distribution's default): 405 UNSUPPORTED. */
  deleteDisabled?: boolean;
  /** Serve https with this certificate (see tls.ts); the url is then https://. */
  tls?: { certFile: string; keyFile: string; pem: string };
}

const START_ATTEMPTS = 3;

export async function startRegistry(opts: RegistryOptions = {}): Promise<Registry> {
  const dir = await makeTempDir('regshim-registry-');
  try {
    for (let attempt = 1; ; attempt++) {
      const started = await tryStart(dir, opts, attempt);
      if (started) return started;
      if (attempt === START_ATTEMPTS) {
        throw new Error(`docker-registry did not start in ${START_ATTEMPTS} attempts\n${await logTail(join(dir, 'registry.log'))}`);
      }
    }
  } catch (err) {
    await removeTempDir(dir);
    throw err;
  }
}

/** Resolves undefined when the port was taken between freePort() and the bind. */
async function tryStart(dir: string, opts: RegistryOptions, attempt: number): Promise<Registry | undefined> {
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const url = `${opts.tls ? 'https' : 'http'}://${host}`;
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'registry.log');
  const config = join(dir, 'config.yml');
  const policy = opts.policyImageOnly ? 'policy:\n  repository:\n    classes: [image]\n' : '';
  const auth = opts.sillyAuth
    ? 'auth:\n  silly:\n    realm: https://auth.example.test/token\n    service: regshim-test\n'
    : opts.htpasswdFile
      ? `auth:\n  htpasswd:\n    realm: basic-realm\n    path: ${opts.htpasswdFile}\n`
      : opts.token
        ? `auth:\n  token:\n    realm: "${opts.token.realm}"\n    service: ${opts.token.service}\n    issuer: ${opts.token.issuer}\n    rootcertbundle: ${opts.token.rootCertBundle}\n`
        : '';
  await writeFile(
    config,
    'version: 0.1\n' +
      'log: {level: warn}\n' +
      `storage:\n  filesystem: {rootdirectory: ${dataDir}}\n  delete: {enabled: ${opts.deleteDisabled ? 'false' : 'true'}}\n` +
      `http:\n  addr: "${host}"\n` +
      (opts.tls ? `  tls: {certificate: ${opts.tls.certFile}, key: ${opts.tls.keyFile}}\n` : '') +
      policy +
      auth,
  );
  const serve = async (): Promise<Started> => {
    await writeFile(logFile, `--- attempt ${attempt} on ${host}\n`, { flag: 'a' });
    const proc = await startProcess({ cmd: 'docker-registry', args: ['serve', config], logFile, cwd: dir, leftovers: [dir] });
    try {
      const ping = opts.tls ? async () => (await httpsGet(`${url}/v2/`, opts.tls!.pem)).status : async () => (await fetch(`${url}/v2/`)).status;
      await waitFor(async () => [200, 401].includes(await ping()), {
        timeoutMs: 15_000,
        what: `docker-registry on ${host}`,
        logFile,
        process: proc,
      });
    } catch (err) {
      await proc.stop();
      throw err;
    }
    return proc;
  };
  let proc: Started;
  try {
    proc = await serve();
  } catch (err) {
    if (/address already in use/.test(await logTail(logFile, 5))) return undefined;
    throw err;
  }
  return {
    url,
    host,
    dataDir,
    logFile,
    async collectGarbage() {
      await proc.stop();
      const gc = await runCommand('docker-registry', ['garbage-collect', '--delete-untagged', config]);
      // Same address: whatever points at the registry (regshim, gates) keeps working.
      proc = await serve();
      return gc;
    },
    async stop() {
      await proc.stop();
      await removeTempDir(dir);
    },
  };
}
