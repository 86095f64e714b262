// Docker's config.json, read the way docker and containerd read it, but for the upstream's
// host, never regshim's own: the cloud helpers answer only for their registry's name.

/** What a config names for one host: credentials in the file, or a helper to ask. */
export type CredentialSpec =
  | { kind: 'basic'; username: string; password: string; source: string; passwordFile?: string }
  | { kind: 'identity-token'; token: string; source: string }
  | { kind: 'helper'; helper: string; source: string };

interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/**
 * The credentials a Docker config gives for `host` (host[:port]), in docker's order:
 * `credHelpers[host]`, then `credsStore`, then `auths`. Keys may be URLs
 * (`https://index.docker.io/v1/`). Undefined when it has nothing for the host.
 */
export function lookupDockerConfig(text: string, host: string, file: string): CredentialSpec | undefined {
  let config: DockerConfigFile;
  try {
    config = JSON.parse(text) as DockerConfigFile;
  } catch {
    // Not the parser's message: it quotes the file, which holds secrets.
    throw new Error(`${file} is not valid JSON`);
  }
  if (typeof config !== 'object' || config === null) throw new Error(`${file} is not a JSON object`);
  const helper = entryFor(config.credHelpers, host);
  if (typeof helper === 'string' && helper !== '') return { kind: 'helper', helper, source: `${file} credHelpers` };
  if (typeof config.credsStore === 'string' && config.credsStore !== '') {
    return { kind: 'helper', helper: config.credsStore, source: `${file} credsStore` };
  }
  const auth = entryFor(config.auths, host);
  if (auth === undefined) return undefined;
  const source = `${file} auths`;
  if (typeof auth.identitytoken === 'string' && auth.identitytoken !== '') return { kind: 'identity-token', token: auth.identitytoken, source };
  if (typeof auth.auth === 'string' && auth.auth !== '') {
    const decoded = Buffer.from(auth.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 1) throw new Error(`${source} entry for ${host}: "auth" is not base64 of user:password`);
    return { kind: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1), source };
  }
  if (typeof auth.username === 'string' && typeof auth.password === 'string') {
    return { kind: 'basic', username: auth.username, password: auth.password, source };
  }
  return undefined;
}

function entryFor<T>(entries: Record<string, T> | undefined, host: string): T | undefined {
  if (typeof entries !== 'object' || entries === null) return undefined;
  const wanted = host.toLowerCase();
  for (const [key, value] of Object.entries(entries)) {
    if (hostOfKey(key) === wanted) return value;
  }
  return undefined;
}

/** `https://host:port/v1/` -> `host:port`; a bare `host` stays as it is. */
function hostOfKey(key: string): string {
  const bare = key.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  return (bare.split('/')[0] ?? '').toLowerCase();
}

/** A helper's answer to `get` (docker-credential-helpers' protocol). */
export function parseHelperOutput(stdout: string): { kind: 'basic'; username: string; password: string } | { kind: 'identity-token'; token: string } {
  let parsed: { Username?: unknown; Secret?: unknown };
  try {
    parsed = JSON.parse(stdout) as { Username?: unknown; Secret?: unknown };
  } catch {
    // The output may hold a secret: say what is wrong, never what it was.
    throw new Error('its output is not the JSON object {"ServerURL","Username","Secret"}');
  }
  if (typeof parsed?.Secret !== 'string' || parsed.Secret === '' || typeof parsed.Username !== 'string') {
    throw new Error('its output has no Username and Secret');
  }
  if (parsed.Username === '<token>') return { kind: 'identity-token', token: parsed.Secret };
  return { kind: 'basic', username: parsed.Username, password: parsed.Secret };
}
