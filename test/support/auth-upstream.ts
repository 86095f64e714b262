// distribution 2.8 that wants credentials: Basic (htpasswd, as ECR asks) or Bearer tokens
// from the token-server simulation (as Artifact Registry, ACR, Quay and Docker Hub ask).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { type Registry, startRegistry } from './registry.js';
import { type TokenServer, startTokenServer } from './token-server.js';

export type UpstreamAuthKind = 'basic' | 'token';

export interface AuthedUpstream {
  kind: UpstreamAuthKind;
  registry: Registry;
  /** Only for 'token'. */
  tokens: TokenServer | undefined;
  username: string;
  password: string;
  stop(): Promise<void>;
}

export const USERNAME = 'builder';
export const PASSWORD = 'pw-Zq81-unique-4c1d';

/** `dir` must outlive the upstream (htpasswd, certificate). Tokens live `expiresInS` (2 s by default). */
export async function startAuthedUpstream(kind: UpstreamAuthKind, dir: string, expiresInS = 2): Promise<AuthedUpstream> {
  if (kind === 'basic') {
    const htpasswdFile = join(dir, 'upstream.htpasswd');
    // Cost 5: distribution checks bcrypt on every request, and the default cost would slow the tests.
    await writeFile(htpasswdFile, `${USERNAME}:${bcrypt.hashSync(PASSWORD, 5)}\n`);
    const registry = await startRegistry({ htpasswdFile });
    return { kind, registry, tokens: undefined, username: USERNAME, password: PASSWORD, stop: () => registry.stop() };
  }
  const tokens = await startTokenServer({ expiresInS, users: { [USERNAME]: PASSWORD }, dir });
  try {
    const registry = await startRegistry({ token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certFile } });
    return {
      kind,
      registry,
      tokens,
      username: USERNAME,
      password: PASSWORD,
      async stop() {
        await registry.stop();
        await tokens.stop();
      },
    };
  } catch (err) {
    await tokens.stop();
    throw err;
  }
}

/** Every form a secret of this upstream could take in a log. */
export function secretsOf(up: AuthedUpstream): string[] {
  return [up.password, Buffer.from(`${up.username}:${up.password}`).toString('base64'), ...(up.tokens?.tokens ?? [])];
}

/** An `Authorization: Basic` value, for regshim's own login or an upstream's. */
export function basicAuth(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}
