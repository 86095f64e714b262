// The pretty log format, line by line: what a person reads for a request, for a refusal the
// registry made, and for an error. (The terminal itself: test/e2e/terminal.test.ts.)
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, requestLogger } from '../../src/observability/log.js';
import { prettyDestination } from '../../src/observability/pretty.js';

function capture(colorize = false) {
  const lines: string[] = [];
  const out = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { log: createLogger('info', prettyDestination({ colorize, destination: out })), lines };
}

const TIME = String.raw`\[\d\d:\d\d:\d\d\.\d{3}\]`;

describe('--log-format pretty', () => {
  it('a request: time, method, path, status, duration, upstream time, action; nothing after it', () => {
    const { log, lines } = capture();
    requestLogger(log).info({ reqId: 'r1', method: 'PUT', path: '/v2/team/app/manifests/cache', repo: 'team/app', ref: 'cache', status: 201, bytesIn: 892, bytesOut: 0, durationMs: 12.5, upstreamMs: 9.1, action: 'converted' }, 'request');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^${TIME} INFO: PUT /v2/team/app/manifests/cache 201 12.5 ms \\(upstream 9.1 ms\\) converted$`));
  });

  it('a refusal: the repository and tag, then the registry’s code and message', () => {
    const { log, lines } = capture();
    log.warn({ reqId: 'r2', repo: 'team/app', ref: 'cache', status: 400, upstreamCode: 'MANIFEST_INVALID', upstreamMessage: 'unknown media type' }, 'upstream refused the converted manifest');
    expect(lines[0]).toMatch(new RegExp(`^${TIME} WARN: upstream refused the converted manifest team/app:cache \\{"status":400,"upstreamCode":"MANIFEST_INVALID","upstreamMessage":"unknown media type"\\}$`));
  });

  it('an error: its message and code on the same line', () => {
    const { log, lines } = capture();
    log.warn({ err: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }), method: 'GET' }, 'upstream request failed');
    expect(lines[0]).toMatch(new RegExp(`^${TIME} WARN: upstream request failed \\{"err":"connect ECONNREFUSED 127.0.0.1:9","method":"GET"\\}$`));
  });

  it('colored: the status by class, the action in bold', () => {
    const { log, lines } = capture(true);
    const request = requestLogger(log);
    for (const status of [200, 404, 502]) request.info({ method: 'GET', path: '/v2/a/blobs/x', status, durationMs: 1, action: 'passed-through' }, 'request');
    expect(lines[0]).toContain('\u001b[32m200');
    expect(lines[1]).toContain('\u001b[33m404');
    expect(lines[2]).toContain('\u001b[31m502');
    expect(lines[0]).toContain('\u001b[1mpassed-through');
  });
});
