// The authentication part of the configuration: where upstream credentials come from, who
// may use regshim, and the rule that keeps a credentialed regshim off open networks.
// Pure like config.ts: files arrive through the reader it is given.
import type { AccessRules } from './access/gate.js';
import { type Htpasswd, parseHtpasswd } from './access/htpasswd.js';
import { type CredentialSpec, lookupDockerConfig } from './registry/auth/docker-config.js';

export interface AuthConfig {
  /** regshim's own credentials for the upstream; undefined: clients bring theirs (pass-through). */
  readonly upstreamCredentials: CredentialSpec | undefined;
  readonly access: AccessRules;
  readonly allowUnauthenticated: boolean;
  readonly credentialHelperTimeoutMs: number;
}

export interface RawAuthConfig {
  /** --docker-config: a folder holding config.json (as docker's --config) or the file itself. */
  dockerConfig?: string | undefined;
  /** $DOCKER_CONFIG: used when --docker-config is not given; a host it lacks is no error. */
  dockerConfigEnv?: string | undefined;
  upstreamUsername?: string | undefined;
  /** From REGSHIM_UPSTREAM_PASSWORD only: a flag would show it in `ps`. */
  upstreamPassword?: string | undefined;
  upstreamPasswordFile?: string | undefined;
  authHtpasswd?: string | undefined;
  authCheckThreads?: string | undefined;
  authCheckQueue?: string | undefined;
  authMaxFailuresPerUser?: string | undefined;
  authMaxFailuresPerAddress?: string | undefined;
  authFailureWindow?: string | undefined;
  allowRepository?: string[] | string | undefined;
  allowUnauthenticated?: boolean | string | undefined;
  credentialHelperTimeout?: string | undefined;
}

export const AUTH_DEFAULTS = { credentialHelperTimeoutMs: 10_000 };

type Fail = (message: string) => Error;

/** The limits on password checks, parsed with the other limits (config.ts). */
export type LoginLimits = Pick<AccessRules, 'passwordChecks' | 'failureLimits'>;

export function parseAuthConfig(raw: RawAuthConfig, upstream: URL, listenHost: string, read: (path: string) => string, fail: Fail, loginLimits: LoginLimits): AuthConfig {
  const upstreamCredentials = parseCredentials(raw, upstream, read, fail);
  const htpasswd = raw.authHtpasswd === undefined ? undefined : parseHtpasswdFile(raw.authHtpasswd, read, fail);
  const allowRepositories = listOf(raw.allowRepository);
  for (const glob of allowRepositories) {
    if (!/^[a-z0-9._\-/*?[\]{},!]+$/.test(glob)) {
      throw fail(`--allow-repository ${JSON.stringify(glob)} is not a repository glob like team/app, team/* or team/**`);
    }
  }
  const allowUnauthenticated = raw.allowUnauthenticated === true || raw.allowUnauthenticated === 'true' || raw.allowUnauthenticated === '1';
  const config = { upstreamCredentials, access: { htpasswd, allowRepositories, ...loginLimits }, allowUnauthenticated };
  const refusal = openListenRefusal(config, listenHost, [listenHost]);
  if (refusal !== undefined) throw fail(refusal);
  let credentialHelperTimeoutMs = AUTH_DEFAULTS.credentialHelperTimeoutMs;
  if (raw.credentialHelperTimeout !== undefined) {
    const n = Number(raw.credentialHelperTimeout);
    if (raw.credentialHelperTimeout.trim() === '' || !Number.isFinite(n) || n <= 0) {
      throw fail(`--credential-helper-timeout ${JSON.stringify(raw.credentialHelperTimeout)} must be a positive number of seconds, e.g. 10`);
    }
    credentialHelperTimeoutMs = Math.round(n * 1000);
  }
  return { ...config, credentialHelperTimeoutMs };
}

function parseCredentials(raw: RawAuthConfig, upstream: URL, read: (path: string) => string, fail: Fail): CredentialSpec | undefined {
  const password = raw.upstreamPasswordFile !== undefined ? readOrFail(read, '--upstream-password-file', raw.upstreamPasswordFile, fail).replace(/\r?\n$/, '') : raw.upstreamPassword;
  if (raw.upstreamUsername !== undefined || password !== undefined) {
    if (raw.upstreamUsername === undefined || raw.upstreamUsername === '' || password === undefined || password === '') {
      throw fail('--upstream-username goes with a password: --upstream-password-file <file> or REGSHIM_UPSTREAM_PASSWORD');
    }
    if (raw.dockerConfig !== undefined) throw fail('give either --upstream-username or --docker-config, not both');
    const source = raw.upstreamPasswordFile !== undefined ? '--upstream-username and --upstream-password-file' : '--upstream-username and REGSHIM_UPSTREAM_PASSWORD';
    // A file is read again while running (a rotated Secret, a refreshed access token).
    return raw.upstreamPasswordFile !== undefined
      ? { kind: 'basic', username: raw.upstreamUsername, password, source, passwordFile: raw.upstreamPasswordFile }
      : { kind: 'basic', username: raw.upstreamUsername, password, source };
  }
  const explicit = raw.dockerConfig !== undefined;
  const location = raw.dockerConfig ?? raw.dockerConfigEnv;
  if (location === undefined || location === '') return undefined;
  const file = location.endsWith('.json') ? location : `${location.replace(/\/+$/, '')}/config.json`;
  let text: string;
  try {
    text = read(file);
  } catch (err) {
    if (!explicit) return undefined; // $DOCKER_CONFIG without a config.json: nothing configured
    throw fail(`--docker-config ${JSON.stringify(location)}: ${file} cannot be read (${(err as Error).message})`);
  }
  let spec: CredentialSpec | undefined;
  try {
    spec = lookupDockerConfig(text, upstream.host, file);
  } catch (err) {
    throw fail(`${(err as Error).message}: fix the Docker config, or leave out --docker-config`);
  }
  if (spec === undefined && explicit) {
    throw fail(`${file} has no credentials for ${upstream.host}: add an "auths" or "credHelpers" entry under that name (the upstream's, not regshim's)`);
  }
  return spec;
}

function parseHtpasswdFile(path: string, read: (path: string) => string, fail: Fail): Htpasswd {
  try {
    return { file: path, users: parseHtpasswd(readOrFail(read, '--auth-htpasswd', path, fail), path) };
  } catch (err) {
    throw fail(`--auth-htpasswd: ${(err as Error).message}`);
  }
}

function readOrFail(read: (path: string) => string, flag: string, path: string, fail: Fail): string {
  try {
    return read(path);
  } catch (err) {
    throw fail(`${flag} ${JSON.stringify(path)} cannot be read (${(err as Error).message})`);
  }
}

function listOf(value: string[] | string | undefined): string[] {
  const values = value === undefined ? [] : Array.isArray(value) ? value : [value];
  return values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
}

/**
 * Why regshim must not listen on these addresses, or undefined: with upstream credentials
 * and no inbound authentication, anyone who reaches it could read and push with them. The
 * addresses are those `host` names: itself when a literal, what it resolves to, or what was
 * bound (a name is judged by its addresses: /etc/hosts may map `localhost` anywhere).
 */
export function openListenRefusal(config: ListenRuleConfig, host: string, addresses: readonly string[]): string | undefined {
  if (!config.upstreamCredentials || !mustListenOnLoopback(config)) return undefined;
  const open = addresses.filter((a) => !isLoopback(a));
  if (open.length === 0) return undefined;
  const where = open.length === 1 && open[0] === host ? host : `${host} (${open.join(', ')})`;
  return (
    `refusing to listen on ${where} with upstream credentials (${config.upstreamCredentials.source}) and no inbound authentication: ` +
    `anyone who reaches it could read and push with them. Add --auth-htpasswd <file>, listen on 127.0.0.1, ` +
    `or pass --allow-unauthenticated if the network itself is the guard (a pod's own sidecar)`
  );
}

type ListenRuleConfig = Pick<AuthConfig, 'upstreamCredentials' | 'access' | 'allowUnauthenticated'>;

/** Upstream credentials, and nothing else in front of them: only loopback will do. */
export function mustListenOnLoopback(config: ListenRuleConfig): boolean {
  return config.upstreamCredentials !== undefined && !config.access.htpasswd && !config.allowUnauthenticated;
}

/** 127.0.0.0/8, ::1 and the name localhost (whose addresses are judged again once resolved). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^(?:::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
