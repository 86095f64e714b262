// WWW-Authenticate (RFC 9110 section 11.6.1): the registry's challenge, as the token flow
// needs it (distribution-spec auth, "token.md": Bearer realm, service, scope).

export type Challenge =
  | { scheme: 'basic'; realm: string | undefined }
  | { scheme: 'bearer'; realm: string; service: string | undefined; scope: string | undefined };

/** The first Basic or Bearer challenge in the header(s); undefined when there is none. */
export function parseChallenge(header: string | string[] | undefined): Challenge | undefined {
  const values = header === undefined ? [] : Array.isArray(header) ? header : [header];
  for (const value of values) {
    for (const { scheme, params } of splitChallenges(value)) {
      if (scheme === 'basic') return { scheme, realm: params.realm };
      if (scheme === 'bearer' && params.realm !== undefined) {
        return { scheme, realm: params.realm, service: params.service, scope: params.scope };
      }
    }
  }
  return undefined;
}

/** `Scheme k=v, k="v, with comma", Scheme2 …` -> one entry per challenge. */
function splitChallenges(value: string): { scheme: string; params: Record<string, string> }[] {
  const out: { scheme: string; params: Record<string, string> }[] = [];
  const re = /\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)(?:\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*)))?\s*,?/gy;
  let current: { scheme: string; params: Record<string, string> } | undefined;
  for (let m = re.exec(value); m !== null && m[0] !== ''; m = re.exec(value)) {
    const name = m[1] as string;
    const quoted = m[2];
    const bare = m[3];
    if (quoted === undefined && bare === undefined) {
      current = { scheme: name.toLowerCase(), params: {} };
      out.push(current);
    } else if (current) {
      current.params[name.toLowerCase()] = quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : (bare as string);
    }
  }
  return out;
}
