// Who may use regshim: a regshim holding push credentials is an open door to the registry,
// so clients prove themselves (htpasswd, bcrypt) and reach only the allowed repositories,
// before anything goes upstream.
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { posix } from 'node:path';
import bcrypt from 'bcryptjs';
import { LRUCache } from 'lru-cache';
import type { Metrics } from '../observability/metrics.js';
import { answerAndClose } from '../intake/close.js';
import { OciError } from '../registry/errors.js';
import type { Route } from '../registry/routes.js';
import { repositoriesOf } from '../registry/auth/scope.js';

export interface AccessRules {
  /** user -> bcrypt hash; undefined: no inbound authentication. */
  readonly htpasswd: ReadonlyMap<string, string> | undefined;
  /** Globs of repository names (`team/*`, `team/**`); empty: every repository. */
  readonly allowRepositories: readonly string[];
}

/** The challenge that asks a client to log in to regshim itself (--auth-htpasswd). */
export const INBOUND_CHALLENGE = 'Basic realm="regshim"';

/** `user:$2y$…` lines; anything but bcrypt is refused, since the rest are weak. */
export function parseHtpasswd(text: string, file: string): Map<string, string> {
  const users = new Map<string, string>();
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    const hash = line.slice(colon + 1);
    if (colon < 1 || !/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) {
      throw new Error(`${file} line ${i + 1} is not user:bcrypt-hash (make entries with htpasswd -B)`);
    }
    users.set(line.slice(0, colon), hash);
  }
  if (users.size === 0) throw new Error(`${file} holds no user: add one with htpasswd -B ${file} <user>`);
  return users;
}

export type Gate = (req: IncomingMessage, res: ServerResponse, route: Route, query: URLSearchParams) => Promise<boolean>;

/**
 * Checks a registry request; true when it may go on, otherwise it has been answered
 * (401 UNAUTHORIZED or 403 DENIED). Health, readiness and metrics never come here.
 */
export function createGate(rules: AccessRules, metrics: Metrics): Gate | undefined {
  const { htpasswd, allowRepositories } = rules;
  if (!htpasswd && allowRepositories.length === 0) return undefined;
  // bcrypt costs from tens to hundreds of milliseconds of CPU a check, by design: remember
  // the headers that passed or failed (by their hash, never in the clear), so a build's
  // thousand requests pay it once and a client retrying a wrong password does not burn CPU.
  const checked = new LRUCache<string, boolean>({ max: 1000, ttl: 5 * 60_000 });

  async function authenticated(header: string | undefined): Promise<boolean> {
    if (!htpasswd) return true;
    const m = header === undefined ? null : /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
    if (!m) return false;
    const key = createHash('sha256').update(m[1] as string).digest('hex');
    const known = checked.get(key);
    if (known !== undefined) return known;
    const decoded = Buffer.from(m[1] as string, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const hash = colon > 0 ? htpasswd.get(decoded.slice(0, colon)) : undefined;
    const ok = hash !== undefined && (await bcrypt.compare(decoded.slice(colon + 1), hash));
    checked.set(key, ok);
    return ok;
  }

  return async (req, res, route, query) => {
    if (!(await authenticated(req.headers.authorization))) {
      metrics.inboundAuthFailures.inc({ reason: 'unauthorized' });
      answerAndClose(req, res, new OciError('UNAUTHORIZED', 'authentication required'), { 'www-authenticate': INBOUND_CHALLENGE });
      return false;
    }
    if (allowRepositories.length === 0) return true;
    const names = repositoriesOf(route, query);
    if (route.kind === 'base') return true;
    // The catalog would list every repository, allowed or not; a path outside the grammar
    // has no repository name to check.
    const denied = route.kind === 'catalog' || route.kind === 'other'
      ? [route.kind === 'catalog' ? '_catalog' : 'this path']
      : names.filter((n) => !allowRepositories.some((g) => posix.matchesGlob(n, g)));
    if (denied.length === 0) return true;
    metrics.inboundAuthFailures.inc({ reason: 'denied' });
    answerAndClose(req, res, new OciError('DENIED', `regshim does not give access to ${denied.join(', ')} (--allow-repository)`));
    return false;
  };
}
