// The token flow (distribution-spec auth, "token.md" and "oauth.md"): a Bearer token for
// some scopes, from the realm the registry's challenge names.
import { type Dispatcher, request } from 'undici';
import type { Credential } from './credentials.js';

export interface Token {
  token: string;
  /** Seconds the realm says the token lives; 60 when it does not say (token.md). */
  expiresInS: number;
}

/** The realm refused the credentials (401/403): they are stale or wrong. */
export class RealmRejected extends Error {
  override name = 'RealmRejected';
}

export async function fetchToken(
  dispatcher: Dispatcher,
  realm: string,
  service: string | undefined,
  scopes: readonly string[],
  credential: Credential,
  timeoutMs: number,
): Promise<Token> {
  const url = new URL(realm);
  let res: Dispatcher.ResponseData;
  if (credential.kind === 'identity-token') {
    // An identity token is an OAuth2 refresh token: only the POST form takes it (ACR, Docker Hub).
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: credential.token, client_id: 'regshim' });
    if (service !== undefined) form.set('service', service);
    if (scopes.length > 0) form.set('scope', scopes.join(' '));
    res = await request(url, {
      method: 'POST',
      dispatcher,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
  } else {
    if (service !== undefined) url.searchParams.set('service', service);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    const basic = Buffer.from(`${credential.username}:${credential.password}`).toString('base64');
    res = await request(url, { method: 'GET', dispatcher, headers: { authorization: `Basic ${basic}` }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  }
  const text = await res.body.text();
  if (res.statusCode === 401 || res.statusCode === 403) {
    throw new RealmRejected(`the token realm ${url.origin}${url.pathname} refused the credentials (${res.statusCode})`);
  }
  if (res.statusCode !== 200) throw new Error(`the token realm ${url.origin}${url.pathname} answered ${res.statusCode}`);
  let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw new Error(`the token realm ${url.origin}${url.pathname} answered with something that is not JSON`);
  }
  // `token` and `access_token` are the same thing; either may be missing.
  const token = typeof body.token === 'string' && body.token !== '' ? body.token : body.access_token;
  if (typeof token !== 'string' || token === '') throw new Error(`the token realm ${url.origin}${url.pathname} answered without a token`);
  const expiresInS = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60;
  return { token, expiresInS };
}
