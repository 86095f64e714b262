// What doctor finds out about a registry before it probes: can it be reached, over which
// TLS, how it asks for credentials, and whether regshim's credentials get pull and push
// tokens for the repository. And, when asked, what a running regshim says about itself.
import tls from 'node:tls';
import { Agent, request } from 'undici';
import type { Config } from '../config.js';
import { parseChallenge } from '../registry/auth/challenge.js';
import type { RegistryConnection } from '../registry/client.js';
import { upstreamRefusalOf } from '../registry/upstream-refusal.js';

export interface Reach {
  ok: boolean;
  /** The status of GET /v2/ without credentials. */
  status: number | undefined;
  error: string | undefined;
}

export interface TlsFacts {
  protocol: string | undefined;
  /** The certificate chain is trusted (system CAs, or --upstream-ca). */
  trusted: boolean;
  error: string | undefined;
  validTo: string | undefined;
}

export interface ChallengeFacts {
  scheme: 'none' | 'basic' | 'bearer';
  realm: string | undefined;
  service: string | undefined;
}

export interface Access {
  ok: boolean;
  detail: string;
}

export interface CredentialFacts {
  /** Where they come from; undefined when none are configured. */
  source: string | undefined;
  pull: Access;
  push: Access;
}

export interface RegshimFacts {
  url: string;
  reachable: boolean;
  version: string | undefined;
  /** The upstream it fronts. */
  upstream: string | undefined;
  settings: Record<string, unknown> | undefined;
  /** GET /readyz: it reaches its upstream (with its credentials, when it has them). */
  ready: boolean;
  readyDetail: string;
}

const TIMEOUT_MS = 10_000;

export async function reach(upstream: URL, config: Config): Promise<{ reach: Reach; challenge: ChallengeFacts }> {
  const dispatcher = new Agent({ connect: { timeout: TIMEOUT_MS, ...(config.upstreamCa ? { ca: config.upstreamCa } : {}) } });
  try {
    const res = await request(new URL('/v2/', upstream), { dispatcher, headersTimeout: TIMEOUT_MS, bodyTimeout: TIMEOUT_MS });
    await res.body.dump();
    const parsed = res.statusCode === 401 ? parseChallenge(res.headers['www-authenticate']) : undefined;
    const challenge: ChallengeFacts = parsed
      ? { scheme: parsed.scheme, realm: parsed.realm, service: parsed.scheme === 'bearer' ? parsed.service : undefined }
      : { scheme: 'none', realm: undefined, service: undefined };
    const ok = res.statusCode === 200 || res.statusCode === 401;
    return { reach: { ok, status: res.statusCode, error: ok ? undefined : `GET /v2/ answered ${res.statusCode}: not a registry API` }, challenge };
  } catch (err) {
    const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
    const reason = e.cause?.code ?? e.code ?? e.cause?.message ?? e.message ?? 'error';
    return { reach: { ok: false, status: undefined, error: `GET ${upstream.origin}/v2/ failed: ${reason}` }, challenge: { scheme: 'none', realm: undefined, service: undefined } };
  } finally {
    await dispatcher.close();
  }
}

/** The TLS handshake as the server would make it; undefined for plain http. */
export function tlsFacts(upstream: URL, ca: string | undefined): Promise<TlsFacts | undefined> {
  if (upstream.protocol !== 'https:') return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const port = Number(upstream.port || 443);
    const socket = tls.connect({ host: upstream.hostname, port, servername: isIp(upstream.hostname) ? undefined : upstream.hostname, rejectUnauthorized: false, ...(ca ? { ca } : {}) });
    const done = (facts: TlsFacts) => {
      socket.destroy();
      resolve(facts);
    };
    socket.setTimeout(TIMEOUT_MS, () => done({ protocol: undefined, trusted: false, error: 'the TLS handshake timed out', validTo: undefined }));
    socket.once('error', (err) => done({ protocol: undefined, trusted: false, error: err.message, validTo: undefined }));
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      const authError = socket.authorizationError;
      done({
        protocol: socket.getProtocol() ?? undefined,
        trusted: socket.authorized,
        error: authError === null ? undefined : String(authError),
        validTo: cert.valid_to ? new Date(cert.valid_to).toISOString() : undefined,
      });
    });
  });
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}

/**
 * Pull and push access for the repository with the configured credentials: a token for
 * each scope (Bearer) and a request that needs it. Push is proven by the probes' uploads.
 */
export async function credentialFacts(connection: RegistryConnection, repository: string): Promise<CredentialFacts> {
  const { auth, upstream } = connection;
  const source = auth?.describe();
  const token = async (scope: string): Promise<Access> => {
    if (!auth) return { ok: true, detail: 'no credentials configured: requests go without' };
    try {
      const authorization = await auth.headerFor([scope]);
      return { ok: true, detail: authorization === undefined ? 'the registry asks for none' : authorization.startsWith('Bearer ') ? `token for ${scope}` : 'Basic credentials' };
    } catch (err) {
      return { ok: false, detail: (err as Error).message };
    }
  };
  const pullToken = await token(`repository:${repository}:pull`);
  const pushToken = await token(`repository:${repository}:pull,push`);
  let pull = pullToken;
  if (pullToken.ok) {
    // 404 NAME_UNKNOWN is a repository not pushed yet: readable all the same.
    const tags = await upstream.request({ method: 'GET', path: `/v2/${repository}/tags/list`, headers: {}, maxBodyBytes: 1 << 20 }).catch((err: Error) => err);
    if (tags instanceof Error) pull = { ok: false, detail: tags.message };
    else if (tags.status !== 200 && tags.status !== 404) {
      const refusal = upstreamRefusalOf(tags.body);
      pull = { ok: false, detail: `GET /v2/${repository}/tags/list answered ${tags.status}${refusal ? ` ${refusal.code}: ${refusal.message}` : ''}` };
    }
  }
  return { source, pull, push: pushToken };
}

/** GET /info and /readyz of a running regshim. */
export async function regshimFacts(url: URL): Promise<RegshimFacts> {
  const get = async (path: string) => {
    const res = await request(new URL(path, url), { headersTimeout: TIMEOUT_MS, bodyTimeout: TIMEOUT_MS });
    return { status: res.statusCode, text: await res.body.text() };
  };
  try {
    const info = await get('/info');
    const about = info.status === 200 ? (JSON.parse(info.text) as { version?: string; upstream?: string; settings?: Record<string, unknown> }) : {};
    const ready = await get('/readyz');
    const refusal = upstreamRefusalOf(Buffer.from(ready.text));
    return {
      url: url.origin,
      reachable: true,
      version: about.version,
      upstream: about.upstream,
      settings: about.settings,
      ready: ready.status === 200,
      readyDetail: ready.status === 200 ? 'it reaches its upstream' : `GET /readyz answered ${ready.status}${refusal ? `: ${refusal.message}` : ''}`,
    };
  } catch (err) {
    const e = err as { code?: string; cause?: { code?: string }; message?: string };
    return { url: url.origin, reachable: false, version: undefined, upstream: undefined, settings: undefined, ready: false, readyDetail: `cannot be reached: ${e.cause?.code ?? e.code ?? e.message}` };
  }
}
