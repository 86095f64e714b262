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
  if (method === 'POST' && query.has('mount')) scopes.push(...mountSources(route, query).map((from) => `repository:${from}:pull`));
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

/** The repositories a request reaches: its own and, for a mount, the ones it reads from. */
export function repositoriesOf(route: Route, query: URLSearchParams): string[] {
  if (!('name' in route)) return [];
  return [route.name, ...mountSources(route, query)];
}

/**
 * Every `from` of an upload but its own name. Distribution takes the first (Go's FormValue),
 * and drops pairs it cannot decode; all are checked, so whichever it takes was checked.
 */
function mountSources(route: Route, query: URLSearchParams): string[] {
  if (route.kind !== 'upload') return [];
  return [...new Set(query.getAll('from'))].filter((from) => from !== route.name);
}

/** scopeOf for a request path with its query, as regshim's own calls and the proxy have it. */
export function scopeOfPath(method: string, path: string): string[] {
  const q = path.indexOf('?');
  const pathname = q === -1 ? path : path.slice(0, q);
  return scopeOf(method, parseRoute(pathname), new URLSearchParams(q === -1 ? '' : path.slice(q + 1)));
}
