// regshim's own credentials for the upstream: one header per scope, for the pass-through
// and regshim's own calls alike. The realm is learnt from the upstream's challenge on /v2/
// before the first request, so a streamed upload goes out with its token and is never
// refused half-sent (it could not be replayed).
import { LRUCache } from 'lru-cache';
import type { Config } from '../../config.js';
import { Agent, type Dispatcher, request } from 'undici';
import type { Logger } from '../../observability/log.js';
import type { Metrics } from '../../observability/metrics.js';
import { type Challenge, parseChallenge } from './challenge.js';
import { type Credential, CredentialError, Credentials } from './credentials.js';
import type { CredentialSpec } from './docker-config.js';
import { RealmRejected, fetchToken } from './tokens.js';

export interface UpstreamAuthOptions {
  upstream: URL;
  spec: CredentialSpec;
  upstreamCa: string | undefined;
  timeoutMs: number;
  helperTimeoutMs: number;
  log: Logger;
  metrics: Metrics;
}

/**
 * A token is renewed when a quarter of its life is left, at least 1 s and at most 30 s
 * before it ends: JWT times are whole seconds, so a token can lose up to a second of the
 * life `expires_in` promises to rounding at the issuer.
 */
const RENEW_SHARE = 0.25;
const RENEW_MIN_MS = 1_000;
const RENEW_MAX_MS = 30_000;

export class UpstreamAuth {
  private readonly credentials: Credentials;
  private readonly dispatcher: Agent;
  private discovered: Promise<Challenge | undefined> | undefined;
  private readonly tokens: LRUCache<string, string>;

  constructor(private readonly opts: UpstreamAuthOptions) {
    const { metrics } = opts;
    this.credentials = new Credentials(opts.spec, opts.upstream.host, opts.helperTimeoutMs, {
      helperRun: (result) => metrics.credentialHelperRuns.inc({ result }),
    });
    this.dispatcher = new Agent({ connect: { timeout: Math.min(opts.timeoutMs, 30_000), ...(opts.upstreamCa ? { ca: opts.upstreamCa } : {}) } });
    // lru-cache's fetch(): concurrent requests for one scope share one token fetch.
    this.tokens = new LRUCache<string, string>({
      max: 1000,
      fetchMethod: async (key, _stale, { options }) => {
        const { token, expiresInS } = await this.fetchBearer(key === '' ? [] : key.split(' '));
        const lifeMs = expiresInS * 1000;
        options.ttl = Math.max(1, lifeMs - Math.min(RENEW_MAX_MS, Math.max(RENEW_MIN_MS, lifeMs * RENEW_SHARE)));
        return token;
      },
    });
  }

  /** Where the credentials come from, for logs and errors. */
  describe(): string {
    return this.credentials.describe();
  }

  /**
   * The Authorization header for a request needing `scopes` (see scopeOf), or undefined
   * when the upstream asks for none. Throws CredentialError when none can be had.
   */
  async headerFor(scopes: readonly string[]): Promise<string | undefined> {
    const challenge = await this.challenge();
    if (challenge === undefined) return undefined;
    if (challenge.scheme === 'basic') {
      const credential = await this.credentials.get();
      if (credential.kind !== 'basic') {
        throw new CredentialError(`${this.describe()} gives an identity token, but ${this.opts.upstream.host} asks for Basic credentials (a username and password)`);
      }
      return `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString('base64')}`;
    }
    const token = await this.tokens.fetch(scopeKey(scopes));
    if (token === undefined) throw new CredentialError(`no token for ${scopes.join(' ')}`);
    return `Bearer ${token}`;
  }

  /**
   * The upstream answered 401 to a request carrying headerFor(scopes): drop that token, and
   * for Basic the credentials themselves, so the next request asks the realm or helper again.
   */
  invalidate(scopes: readonly string[], wwwAuthenticate?: string | string[]): void {
    this.opts.metrics.upstreamAuthRejections.inc();
    const fresh = parseChallenge(wwwAuthenticate);
    if (fresh) this.discovered = Promise.resolve(fresh);
    this.tokens.delete(scopeKey(scopes));
    if (!fresh || fresh.scheme === 'basic') this.credentials.reject();
  }

  /** Readiness: credentials can be had and the upstream accepts them at /v2/. */
  async check(): Promise<void> {
    await this.credentials.get();
    const authorization = await this.headerFor([]);
    const res = await request(new URL('/v2/', this.opts.upstream), {
      dispatcher: this.dispatcher,
      headers: authorization ? { authorization } : {},
      headersTimeout: this.opts.timeoutMs,
      bodyTimeout: this.opts.timeoutMs,
    });
    await res.body.dump();
    if (res.statusCode === 401) {
      this.invalidate([], res.headers['www-authenticate']);
      throw new CredentialError(`${this.opts.upstream.host} refuses the credentials from ${this.describe()} (401 on /v2/)`);
    }
    if (res.statusCode !== 200) throw new CredentialError(`${this.opts.upstream.host} answered ${res.statusCode} on /v2/`);
  }

  close(): Promise<void> {
    return this.dispatcher.close();
  }

  /** The upstream's challenge on /v2/, asked once (again after a failure). */
  private challenge(): Promise<Challenge | undefined> {
    this.discovered ??= this.discover().catch((err: unknown) => {
      this.discovered = undefined;
      throw err;
    });
    return this.discovered;
  }

  private async discover(): Promise<Challenge | undefined> {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(new URL('/v2/', this.opts.upstream), { dispatcher: this.dispatcher, headersTimeout: this.opts.timeoutMs, bodyTimeout: this.opts.timeoutMs });
    } catch (err) {
      throw new CredentialError(`${this.opts.upstream.host} cannot be reached to learn how it authenticates (${(err as { code?: string }).code ?? (err as Error).message})`);
    }
    await res.body.dump();
    if (res.statusCode !== 401) return undefined;
    const challenge = parseChallenge(res.headers['www-authenticate']);
    if (!challenge) throw new CredentialError(`${this.opts.upstream.host} answers 401 on /v2/ without a Basic or Bearer challenge`);
    this.opts.log.debug({ scheme: challenge.scheme, realm: challenge.realm }, 'upstream challenge');
    return challenge;
  }

  private async fetchBearer(scopes: string[]): Promise<{ token: string; expiresInS: number }> {
    const challenge = (await this.challenge()) as Challenge & { scheme: 'bearer' };
    for (let attempt = 1; ; attempt++) {
      const credential: Credential = await this.credentials.get();
      try {
        const token = await fetchToken(this.dispatcher, challenge.realm, challenge.service, scopes, credential, this.opts.timeoutMs);
        this.opts.metrics.tokenFetches.inc({ result: 'ok' });
        this.opts.log.debug({ scope: scopes.join(' '), expiresInS: token.expiresInS }, 'upstream token fetched');
        return token;
      } catch (err) {
        const rejected = err instanceof RealmRejected;
        this.opts.metrics.tokenFetches.inc({ result: rejected ? 'rejected' : 'failed' });
        // Stale credentials (ECR's 12 hours, a rotated Secret): ask the helper or file again, once.
        if (rejected && attempt === 1 && this.credentials.renewable()) {
          this.credentials.reject();
          continue;
        }
        throw new CredentialError(`${(err as Error).message}; credentials from ${this.describe()}`);
      }
    }
  }
}

/** regshim's credentials for the upstream the config names; undefined when none are configured. */
export function upstreamAuthFor(config: Config, log: Logger, metrics: Metrics): UpstreamAuth | undefined {
  return config.upstreamCredentials
    ? new UpstreamAuth({
        upstream: config.upstream,
        spec: config.upstreamCredentials,
        upstreamCa: config.upstreamCa,
        timeoutMs: config.upstreamTimeoutMs,
        helperTimeoutMs: config.credentialHelperTimeoutMs,
        log,
        metrics,
      })
    : undefined;
}

/** One token cache entry per set of scopes, whatever their order (fetchMethod splits it back). */
function scopeKey(scopes: readonly string[]): string {
  return [...scopes].sort().join(' ');
}
