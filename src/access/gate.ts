// Who may use regshim: a regshim holding push credentials is an open door to the registry,
// so clients prove themselves (htpasswd, bcrypt) and reach only the allowed repositories,
// before anything goes upstream.
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { posix } from 'node:path';
import { LRUCache } from 'lru-cache';
import type { Logger } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import { answerAndClose } from '../intake/close.js';
import { OciError } from '../registry/errors.js';
import type { Route } from '../registry/routes.js';
import { repositoriesOf } from '../registry/auth/scope.js';
import { type FailureLimitSettings, FailureLimits } from './failure-limits.js';
import { type Htpasswd, HtpasswdUsers } from './htpasswd.js';
import { ChecksBusy, type PasswordCheckLimits, PasswordChecks } from './password-checks.js';

export interface AccessRules {
  /** The htpasswd file and its users as read at start; undefined: no inbound authentication. */
  readonly htpasswd: Htpasswd | undefined;
  /** Globs of repository names (`team/*`, `team/**`); empty: every repository. */
  readonly allowRepositories: readonly string[];
  readonly passwordChecks: PasswordCheckLimits;
  readonly failureLimits: FailureLimitSettings;
}

/** The challenge that asks a client to log in to regshim itself (--auth-htpasswd). */
export const INBOUND_CHALLENGE = 'Basic realm="regshim"';

/**
 * Checks a registry request; true when it may go on, otherwise it has been answered
 * (401 UNAUTHORIZED, 403 DENIED, 429 TOO_MANY_REQUESTS). Health, readiness and metrics never come here.
 */
export interface Gate {
  (req: IncomingMessage, res: ServerResponse, route: Route, query: URLSearchParams): Promise<boolean>;
  /** Reads the htpasswd file again now (SIGHUP). */
  reload(): Promise<void>;
  close(): Promise<void>;
}

/** A header checked before: for whom, against which hash, and the verdict. */
interface Remembered {
  readonly user: string;
  readonly hash: string | undefined;
  readonly ok: boolean;
}

type Verdict = { ok: true } | { ok: false; error: OciError; headers: Record<string, string> };

const UNAUTHORIZED: Verdict = { ok: false, error: new OciError('UNAUTHORIZED', 'authentication required'), headers: { 'www-authenticate': INBOUND_CHALLENGE } };

export function createGate(rules: AccessRules, metrics: Metrics, log: Logger): Gate | undefined {
  const { allowRepositories } = rules;
  if (!rules.htpasswd && allowRepositories.length === 0) return undefined;
  const htpasswd = rules.htpasswd && new HtpasswdUsers(rules.htpasswd, log, metrics);
  let checks: PasswordChecks | undefined;
  const limits = new FailureLimits(rules.failureLimits);
  // Remembered by the header's hash, never in the clear, so a build's thousand requests pay
  // bcrypt once and a signed-in client never waits behind the check queue. An entry holds
  // only while the user's hash in the file is the one it was checked against.
  const checked = new LRUCache<string, Remembered>({ max: 1000, ttl: 5 * 60_000 });

  async function authenticate(req: IncomingMessage): Promise<Verdict> {
    if (!htpasswd) return { ok: true };
    const header = req.headers.authorization;
    const m = header === undefined ? null : /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
    if (!m) return UNAUTHORIZED;
    const key = createHash('sha256').update(m[1] as string).digest('hex');
    const users = htpasswd.users;
    const known = checked.get(key);
    if (known && users.get(known.user) === known.hash) return known.ok ? { ok: true } : UNAUTHORIZED;
    const decoded = Buffer.from(m[1] as string, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 1) return UNAUTHORIZED;
    const user = decoded.slice(0, colon);
    const address = req.socket.remoteAddress ?? '';
    const limited = limits.limited(user, address);
    if (limited) {
      metrics.inboundAuthLimited.inc({ limit: limited.limit });
      return tooMany(`too many failed logins for this ${limited.limit === 'user' ? 'user' : 'client address'}: try again in ${limited.retryAfterS} s`, limited.retryAfterS);
    }
    const hash = users.get(user);
    limits.attempt(user, address);
    let ok: boolean;
    try {
      checks ??= new PasswordChecks(rules.passwordChecks);
      ok = (await checks.verify(decoded.slice(colon + 1), hash ?? htpasswd.unmatchableHash)) && hash !== undefined;
    } catch (err) {
      limits.succeeded(user, address); // not checked: no failure to count
      if (!(err instanceof ChecksBusy)) throw err;
      metrics.inboundAuthLimited.inc({ limit: 'queue' });
      return tooMany('too many password checks waiting (--auth-check-queue): try again shortly', 1);
    }
    if (ok) limits.succeeded(user, address);
    checked.set(key, { user, hash, ok });
    return ok ? { ok: true } : UNAUTHORIZED;
  }

  const gate = async (req: IncomingMessage, res: ServerResponse, route: Route, query: URLSearchParams): Promise<boolean> => {
    const verdict = await authenticate(req);
    if (!verdict.ok) {
      metrics.inboundAuthFailures.inc({ reason: verdict.error.code === 'UNAUTHORIZED' ? 'unauthorized' : 'limited' });
      answerAndClose(req, res, verdict.error, verdict.headers);
      return false;
    }
    if (allowRepositories.length === 0 || route.kind === 'base') return true;
    // The catalog would list every repository, allowed or not; a path outside the grammar
    // has no repository name to check.
    const denied = route.kind === 'catalog' || route.kind === 'other'
      ? [route.kind === 'catalog' ? '_catalog' : 'this path']
      : repositoriesOf(route, query).filter((n) => !allowRepositories.some((g) => posix.matchesGlob(n, g)));
    if (denied.length === 0) return true;
    metrics.inboundAuthFailures.inc({ reason: 'denied' });
    answerAndClose(req, res, new OciError('DENIED', `regshim does not give access to ${denied.join(', ')} (--allow-repository)`));
    return false;
  };
  return Object.assign(gate, {
    reload: async () => htpasswd?.reload('signal'),
    close: async () => {
      htpasswd?.close();
      await checks?.close();
    },
  });
}

function tooMany(message: string, retryAfterS: number): Verdict {
  return { ok: false, error: new OciError('TOOMANYREQUESTS', message), headers: { 'retry-after': String(retryAfterS) } };
}
