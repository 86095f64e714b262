import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Route } from '../registry/routes.js';
import { type Logger, loggablePath } from './log.js';
import type { Metrics } from './metrics.js';

/**
 * What regshim did with a request, for its log line. Unset means passed through: the blob
 * and upload paths never touch it.
 */
export type RequestAction = 'converted' | 'restored' | 'made' | 'passed-through' | 'refused' | 'answered';

/** What one request's log line needs, filled in by whoever handles it. */
export interface RequestContext {
  readonly id: string;
  readonly route: Route;
  /** Time to the upstream's response headers, summed over regshim's upstream calls. */
  upstreamMs: number | undefined;
  action: RequestAction | undefined;
}

const contexts = new WeakMap<IncomingMessage, RequestContext>();

export function contextOf(req: IncomingMessage): RequestContext | undefined {
  return contexts.get(req);
}

/** Marks what regshim did with the request; the last mark wins. */
export function markAction(req: IncomingMessage, action: RequestAction): void {
  const ctx = contexts.get(req);
  if (ctx) ctx.action = action;
}

export function addUpstreamTime(req: IncomingMessage, ms: number): void {
  const ctx = contexts.get(req);
  if (ctx) ctx.upstreamMs = (ctx.upstreamMs ?? 0) + ms;
}

/** Starts the one log line and the metrics of a request; they are written when it closes. */
export function trackRequest(
  req: IncomingMessage,
  res: ServerResponse,
  route: Route,
  log: Logger,
  metrics: Metrics,
  level: 'info' | 'debug' = 'info',
): RequestContext {
  const started = performance.now();
  const socket = req.socket;
  const readBefore = socket.bytesRead;
  const writtenBefore = socket.bytesWritten;
  const incomingId = req.headers['x-request-id'];
  const ctx: RequestContext = {
    id: typeof incomingId === 'string' && /^[\w.:-]{1,128}$/.test(incomingId) ? incomingId : randomUUID(),
    route,
    upstreamMs: undefined,
    action: undefined,
  };
  contexts.set(req, ctx);
  res.setHeader('x-request-id', ctx.id);
  res.once('close', () => {
    const seconds = (performance.now() - started) / 1000;
    const status = res.writableFinished ? res.statusCode : 499; // 499: the client left first
    metrics.requests.inc({ route: route.kind, method: req.method ?? '', status });
    metrics.duration.observe({ route: route.kind }, seconds);
    log[level](
      {
        reqId: ctx.id,
        method: req.method,
        path: loggablePath(req.url),
        repo: 'name' in route ? route.name : undefined,
        ref: refOf(route, req.url),
        status,
        bytesIn: bodyBytes(req) ?? socket.bytesRead - readBefore,
        bytesOut: socket.bytesWritten - writtenBefore,
        durationMs: Math.round(seconds * 1e4) / 10,
        upstreamMs: ctx.upstreamMs === undefined ? undefined : Math.round(ctx.upstreamMs * 10) / 10,
        action: ctx.action ?? 'passed-through',
      },
      'request',
    );
  });
  return ctx;
}

/** The declared body size; small bodies are already read when the request starts, so the socket can't tell. */
function bodyBytes(req: IncomingMessage): number | undefined {
  const length = Number(req.headers['content-length']);
  return Number.isSafeInteger(length) && length >= 0 ? length : undefined;
}

function refOf(route: Route, url: string | undefined): string | undefined {
  switch (route.kind) {
    case 'manifest':
      return route.reference;
    case 'blob':
    case 'referrers':
      return route.digest;
    case 'upload':
      return route.session; // the session id only; its _state stays in the unlogged query
    case 'other':
      return loggablePath(url);
    default:
      return undefined;
  }
}
