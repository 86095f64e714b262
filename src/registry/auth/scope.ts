// Which token scope a request needs (distribution-spec auth, "scope.md"): the same actions
// distribution checks for each method, so a token fetched ahead of a streamed request fits.
import { type Route, parseRoute } from '../routes.js';

/**
 * The scopes of one request, sorted: `repository:<name>:pull` to read, `pull,push` to write,
 * `delete` to delete, plus `repository:<from>:pull` for a cross-repository mount. The base
 * `/v2/` needs none; the catalog needs `registry:catalog:*`.
 */
export function scopeOf(method: string, route: Route, query: URLSearchParams): string[] {
  if (route.kind === 'catalog') return ['registry:catalog:*'];
  if (!('name' in route)) return [];
  const scopes = [`repository:${route.name}:${actionsOf(method)}`];
  const from = query.get('from');
  if (route.kind === 'upload' && method === 'POST' && query.has('mount') && from !== null && from !== route.name) {
    scopes.push(`repository:${from}:pull`);
  }
  return scopes.sort();
}

function actionsOf(method: string): string {
  switch (method) {
    case 'GET':
    case 'HEAD':
    case 'OPTIONS':
      return 'pull';
    case 'DELETE':
      return 'delete';
    default:
      return 'pull,push';
  }
}

/** The repositories a request reaches: its own and, for a mount, the one it reads from. */
export function repositoriesOf(route: Route, query: URLSearchParams): string[] {
  if (!('name' in route)) return [];
  const from = route.kind === 'upload' ? query.get('from') : null;
  return from !== null && from !== route.name ? [route.name, from] : [route.name];
}

/** scopeOf for a request path with its query, as regshim's own calls and the proxy have it. */
export function scopeOfPath(method: string, path: string): string[] {
  const q = path.indexOf('?');
  const pathname = q === -1 ? path : path.slice(0, q);
  return scopeOf(method, parseRoute(pathname), new URLSearchParams(q === -1 ? '' : path.slice(q + 1)));
}
