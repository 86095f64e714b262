// A simulation of a registry token server (distribution-spec auth, "token.md"), in this
// process, for distribution 2.8's `auth.token`: it checks Basic credentials, signs RS256
// JWTs whose header carries `x5c` (the self-signed certificate that is also the registry's
// rootcertbundle) and records every token it issues and every refusal.
import { createSign, randomUUID, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { makeCertificate } from './tls.js';
import { closeServer, listenOnLoopback } from './local-server.js';

export interface Issued {
  user: string;
  /** GET with Basic credentials, or the OAuth2 POST with a refresh (identity) token. */
  grant: 'basic' | 'refresh_token';
  scopes: string[];
  at: number;
}

export interface TokenServer {
  /** The realm registries name in their challenge: http://127.0.0.1:PORT/token */
  realm: string;
  service: string;
  issuer: string;
  /** The signing certificate, for the registry's rootcertbundle. */
  certFile: string;
  /** user -> password; change it to make credentials stale. */
  users: Map<string, string>;
  issued: Issued[];
  /** Identity tokens (OAuth2 refresh tokens, as ACR's) it accepts on POST, and for whom. */
  identityTokens: Map<string, string>;
  /** Token requests refused (wrong or no credentials). */
  refused: { user: string | undefined; at: number }[];
  /** Every token issued, to look for in logs. */
  tokens: string[];
  stop(): Promise<void>;
}

export interface TokenServerOptions {
  /** The `expires_in` it answers; `exp` is iat + expiresIn - 60 (see below). */
  expiresInS: number;
  users: Record<string, string>;
  /** Folder for the key and certificate. */
  dir: string;
}

export async function startTokenServer(opts: TokenServerOptions): Promise<TokenServer> {
  const cert = await makeCertificate(opts.dir, 'token-signer');
  const key = await readFile(cert.keyFile, 'utf8');
  const der = new X509Certificate(cert.pem).raw.toString('base64');
  const service = 'regshim-test-registry';
  const issuer = 'regshim-test-issuer';
  const users = new Map(Object.entries(opts.users));
  const issued: Issued[] = [];
  const refused: { user: string | undefined; at: number }[] = [];
  const tokens: string[] = [];

  const identityTokens = new Map<string, string>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (b: Buffer) => chunks.push(b));
    req.on('end', () => answer(req, Buffer.concat(chunks).toString('utf8'), res));
  });
  const answer = (req: http.IncomingMessage, body: string, res: http.ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://token');
    let user: string | undefined;
    let scopes: string[];
    if (url.pathname === '/token' && req.method === 'GET') {
      const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const [name, password] = basic ? splitOnce(Buffer.from(basic, 'base64').toString('utf8')) : [undefined, undefined];
      user = name !== undefined && users.get(name) === password ? name : undefined;
      scopes = url.searchParams.getAll('scope');
    } else if (url.pathname === '/token' && req.method === 'POST') {
      // OAuth2 form (distribution-spec auth, "oauth.md"): a refresh token for an access token.
      const form = new URLSearchParams(body);
      user = form.get('grant_type') === 'refresh_token' ? identityTokens.get(form.get('refresh_token') ?? '') : undefined;
      scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
    } else {
      res.writeHead(404).end();
      return;
    }
    if (user === undefined) {
      refused.push({ user, at: Date.now() });
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"invalid credentials"}');
      return;
    }
    const iat = Math.floor(Date.now() / 1000);
    // distribution 2.8 accepts a token until 60 s past its exp (clock-skew leeway): with
    // exp = iat + expires_in - 60 it refuses the token once expires_in has passed.
    const claims = {
      iss: issuer,
      sub: user,
      aud: service,
      iat,
      nbf: iat - 1,
      exp: iat + opts.expiresInS - 60,
      jti: randomUUID(),
      access: scopes.flatMap(accessOf),
    };
    const token = sign({ alg: 'RS256', typ: 'JWT', x5c: [der] }, claims, key);
    issued.push({ user, grant: req.method === 'POST' ? 'refresh_token' : 'basic', scopes, at: Date.now() });
    tokens.push(token);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: opts.expiresInS, issued_at: new Date(iat * 1000).toISOString() }));
  };
  const port = await listenOnLoopback(server);
  return { realm: `http://127.0.0.1:${port}/token`, service, issuer, certFile: cert.certFile, users, identityTokens, issued, refused, tokens, stop: () => closeServer(server) };
}

/** `repository:team/app:pull,push` -> the JWT access entry granting exactly that. */
function accessOf(scope: string): { type: string; name: string; actions: string[] }[] {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last <= first) return [];
  return [{ type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',') }];
}

function sign(header: object, claims: object, key: string): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${b64(header)}.${b64(claims)}`;
  const signature = createSign('RSA-SHA256').update(input).sign(key).toString('base64url');
  return `${input}.${signature}`;
}

function splitOnce(s: string): [string, string] {
  const i = s.indexOf(':');
  return i < 0 ? [s, ''] : [s.slice(0, i), s.slice(i + 1)];
}
