import { describe, expect, it } from 'vitest';
import { createLogger, requestLogger } from '../../src/observability/log.js';

function capture(level: 'info' | 'warn' = 'info') {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger(level, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, lines };
}

// The fields trackRequest writes (access-log.ts).
const requestLine = { reqId: 'abc-1', method: 'HEAD', repo: 'team/app', ref: 'cache', status: 200, bytesIn: 0, bytesOut: 512, durationMs: 2.3, upstreamMs: 1.7 };

describe('logs', () => {
  it('redact secrets by key, nested too', () => {
    const { log, lines } = capture();
    log.info({ authorization: 'Basic c2VjcmV0', headers: { authorization: 'Bearer t0k3n' }, upstream: { password: 'pw', token: 'tk' } }, 'x');
    expect(JSON.stringify(lines[0])).not.toMatch(/c2VjcmV0|t0k3n|"pw"|"tk"/);
    expect(lines[0]).toMatchObject({ authorization: '[redacted]', headers: { authorization: '[redacted]' }, upstream: { password: '[redacted]', token: '[redacted]' } });
  });

  it('write request lines without redaction exactly as the redacting logger would', () => {
    const { log, lines } = capture();
    log.info(requestLine, 'request');
    requestLogger(log).info(requestLine, 'request');
    const [redacted, plain] = lines.map(({ time: _time, ...rest }) => rest);
    expect(plain).toEqual(redacted);
    expect(plain).toMatchObject({ ...requestLine, service: 'regshim', msg: 'request' });
  });

  it('keep the level of the logger request lines come from', () => {
    const { log, lines } = capture('warn');
    requestLogger(log).info(requestLine, 'request');
    requestLogger(log).warn(requestLine, 'request');
    expect(lines.map((l) => l.level)).toEqual([40]);
  });
});
