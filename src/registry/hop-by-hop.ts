// Hop-by-hop headers (RFC 9110 section 7.6.1): they describe one connection, and a proxy
// must not pass them on. Proxy-Authorization above all: a credential meant for a proxy on
// the client's side, never for the registry. Every request leaving regshim drops these.
import type { IncomingHttpHeaders } from 'node:http';

const FIXED = [
  'connection', 'proxy-connection', 'keep-alive', 'proxy-authorization', 'proxy-authenticate',
  'te', 'trailer', 'transfer-encoding', 'upgrade',
] as const;

/** The fixed hop-by-hop header names, lower case. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set(FIXED);

/** The hop-by-hop headers of a request: the fixed ones and every name its Connection lists. */
export function hopByHopNames(headers: IncomingHttpHeaders): string[] {
  const connection = headers.connection ?? '';
  const named = connection.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== '' && !HOP_BY_HOP.has(t));
  return [...FIXED, ...named];
}
