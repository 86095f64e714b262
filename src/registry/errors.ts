import type { ServerResponse } from 'node:http';

/**
 * Every error regshim itself answers with, and its one status. The distribution-spec
 * codes keep their meaning; REQUEST_INVALID, NOT_FOUND, REQUEST_TIMEOUT, MANIFEST_TOO_LARGE, HEADERS_TOO_LARGE
 * and UPSTREAM_* are regshim's own, for failures the spec has no code for. Errors from the upstream never go through here:
 * they pass back unchanged.
 */
const STATUS = {
  DIGEST_INVALID: 400,
  MANIFEST_INVALID: 400,
  NAME_INVALID: 400,
  UNSUPPORTED: 400,
  REQUEST_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  MANIFEST_UNKNOWN: 404,
  NAME_UNKNOWN: 404,
  NOT_FOUND: 404,
  REQUEST_TIMEOUT: 408,
  MANIFEST_TOO_LARGE: 413,
  TOOMANYREQUESTS: 429,
  HEADERS_TOO_LARGE: 431,
  UNKNOWN: 500,
  UPSTREAM_UNREACHABLE: 502,
  UPSTREAM_INVALID: 502,
  UNAVAILABLE: 503,
  UPSTREAM_TIMEOUT: 504,
} as const;

export type OciErrorCode = keyof typeof STATUS;

export class OciError extends Error {
  readonly status: number;
  constructor(
    readonly code: OciErrorCode,
    message: string,
    readonly detail?: unknown,
  ) {
    super(message);
    this.name = 'OciError';
    this.status = STATUS[code];
  }

  toJSON(): { errors: { code: string; message: string; detail?: unknown }[] } {
    const entry: { code: string; message: string; detail?: unknown } = { code: this.code, message: this.message };
    if (this.detail !== undefined) entry.detail = this.detail;
    return { errors: [entry] };
  }
}

export function statusOf(code: OciErrorCode): number {
  return STATUS[code];
}

/** Writes an OciError as the distribution-spec error body; a HEAD gets the headers only. */
export function sendOciError(res: ServerResponse, err: OciError, method = 'GET', extraHeaders: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy(err);
    return;
  }
  const body = Buffer.from(JSON.stringify(err.toJSON()));
  res.writeHead(err.status, {
    ...extraHeaders,
    'content-type': 'application/json',
    'content-length': String(body.length),
    'docker-distribution-api-version': 'registry/2.0',
  });
  res.end(method === 'HEAD' ? undefined : body);
}
