// Where upstream credentials come from at run time: fixed ones (a config.json entry, a
// username with a password file or variable) or a credential helper run on demand.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { type CredentialSpec, parseHelperOutput } from './docker-config.js';

export type Credential = { kind: 'basic'; username: string; password: string } | { kind: 'identity-token'; token: string };

/** Why credentials could not be had, with how to fix it. Never holds a secret. */
export class CredentialError extends Error {
  override name = 'CredentialError';
}

export interface CredentialHooks {
  helperRun(result: 'ok' | 'failed'): void;
}

/**
 * A helper's answer is kept this long, then asked again: ECR's tokens live 12 hours and
 * the helper renews them itself, so an hour keeps regshim well inside their life.
 */
export const HELPER_MAX_AGE_MS = 60 * 60 * 1000;
/** A password file is read again this often, and after a 401: a rotated Secret, a refreshed token. */
export const FILE_MAX_AGE_MS = 60 * 1000;
/** Credentials this young are not dropped on a 401: wrong ones would run the helper on every request. */
const MIN_AGE_TO_REJECT_MS = 1_000;
const BACKOFF_MIN_MS = 1_000;
const BACKOFF_MAX_MS = 60_000;

export class Credentials {
  private current: { credential: Credential; at: number } | undefined;
  private running: Promise<Credential> | undefined;
  private failure: { error: CredentialError; retryAt: number; backoffMs: number } | undefined;

  constructor(
    readonly spec: CredentialSpec,
    private readonly host: string,
    private readonly helperTimeoutMs: number,
    private readonly hooks: CredentialHooks,
    private readonly now: () => number = Date.now,
  ) {
    if (spec.kind === 'basic' && spec.passwordFile !== undefined) this.current = { credential: spec, at: now() };
  }

  /** What a log or an error may say about where the credentials come from. */
  describe(): string {
    return this.spec.kind === 'helper' ? `docker-credential-${this.spec.helper} (${this.spec.source})` : this.spec.source;
  }

  /** The credentials to use now; one helper run (or file read) serves every caller waiting for it. */
  async get(): Promise<Credential> {
    const spec = this.spec;
    if (spec.kind !== 'helper' && (spec.kind !== 'basic' || spec.passwordFile === undefined)) return spec;
    const maxAgeMs = spec.kind === 'helper' ? HELPER_MAX_AGE_MS : FILE_MAX_AGE_MS;
    const fresh = this.current !== undefined && this.now() - this.current.at < maxAgeMs;
    if (fresh) return (this.current as { credential: Credential }).credential;
    if (this.failure && this.now() < this.failure.retryAt) {
      // Backing off: keep what still may work rather than hammering a failing helper.
      if (this.current) return this.current.credential;
      throw this.failure.error;
    }
    return (this.running ??= this.run().finally(() => {
      this.running = undefined;
    }));
  }

  /** Whether asking again may give other credentials (a helper, a password file). */
  renewable(): boolean {
    return this.spec.kind === 'helper' || (this.spec.kind === 'basic' && this.spec.passwordFile !== undefined);
  }

  /** The upstream refused these credentials: the next get() asks the helper (reads the file) again. */
  reject(): void {
    if (this.running || (this.current && this.now() - this.current.at < MIN_AGE_TO_REJECT_MS)) return;
    this.current = undefined;
  }

  private async run(): Promise<Credential> {
    const spec = this.spec;
    const helper = spec.kind === 'helper';
    try {
      const credential = helper ? await runHelper(spec.helper, this.host, this.helperTimeoutMs) : await this.readPasswordFile();
      if (helper) this.hooks.helperRun('ok');
      this.current = { credential, at: this.now() };
      this.failure = undefined;
      return credential;
    } catch (err) {
      if (helper) this.hooks.helperRun('failed');
      const backoffMs = Math.min(BACKOFF_MAX_MS, this.failure ? this.failure.backoffMs * 2 : BACKOFF_MIN_MS);
      const error = err instanceof CredentialError ? err : new CredentialError(String(err));
      this.failure = { error, retryAt: this.now() + backoffMs, backoffMs };
      if (this.current) return this.current.credential;
      throw error;
    }
  }

  private async readPasswordFile(): Promise<Credential> {
    const spec = this.spec as CredentialSpec & { kind: 'basic'; passwordFile: string };
    let text: string;
    try {
      text = await readFile(spec.passwordFile, 'utf8');
    } catch (err) {
      throw new CredentialError(`${spec.passwordFile} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}): check the mounted Secret`);
    }
    const password = text.replace(/\r?\n$/, '');
    if (password === '') throw new CredentialError(`${spec.passwordFile} is empty`);
    return { kind: 'basic', username: spec.username, password };
  }
}

/**
 * `docker-credential-<helper> get` with the host on stdin. A successful answer holds the
 * secret and never goes into a message; a failed one's first line says what went wrong.
 */
export function runHelper(helper: string, host: string, timeoutMs: number): Promise<Credential> {
  const program = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    // Its own process group, so a timeout also ends what it started (a shell's children
    // would otherwise keep its output open, and this promise pending).
    const child = spawn(program, ['get'], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const timer = setTimeout(() => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // ESRCH: it has just exited.
      }
      reject(new CredentialError(`${program} get for ${host} did not answer within ${timeoutMs / 1000} s (--credential-helper-timeout): check its network access and its own configuration`));
    }, timeoutMs);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.on('error', () => undefined); // a helper that exits without reading stdin
    child.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new CredentialError(
          e.code === 'ENOENT'
            ? `${program} is not on PATH: install it (for ECR, Debian's amazon-ecr-credential-helper) or fix credHelpers/credsStore in the Docker config`
            : `${program} could not be started (${e.code ?? e.message})`,
        ),
      );
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) {
        // On failure the protocol's message is on stdout ("credentials not found in native
        // keychain"); there is no secret there then.
        const firstLine = (chunks: Buffer[]) => Buffer.concat(chunks).toString('utf8').trim().split('\n')[0]?.slice(0, 200);
        const reason = firstLine(err) || firstLine(out) || 'no message';
        reject(new CredentialError(`${program} get for ${host} failed (exit ${code}): ${reason}. ${fixFor(helper)}`));
        return;
      }
      try {
        resolve(parseHelperOutput(Buffer.concat(out).toString('utf8')));
      } catch (e) {
        reject(new CredentialError(`${program} get for ${host}: ${(e as Error).message}`));
      }
    });
    child.stdin.end(host);
  });
}

function fixFor(helper: string): string {
  switch (helper) {
    case 'ecr-login':
      return 'Give the pod an AWS identity (IRSA: AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) allowed ecr:GetAuthorizationToken';
    case 'gcloud':
      return 'Give the pod a Google identity (workload identity) or run gcloud auth login';
    default:
      return `Check that docker-credential-${helper} has credentials for this host`;
  }
}
