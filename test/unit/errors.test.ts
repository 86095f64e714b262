import { describe, expect, it } from 'vitest';
import { OciError, statusOf } from '../../src/registry/errors.js';

describe('OciError', () => {
  it.each([
    ['MANIFEST_INVALID', 400],
    ['DIGEST_INVALID', 400],
    ['UNSUPPORTED', 400],
    ['UNAUTHORIZED', 401],
    ['DENIED', 403],
    ['MANIFEST_UNKNOWN', 404],
    ['MANIFEST_TOO_LARGE', 413],
    ['UPSTREAM_UNREACHABLE', 502],
    ['UNAVAILABLE', 503],
    ['UPSTREAM_TIMEOUT', 504],
  ] as const)('%s is always %d', (code, status) => {
    expect(new OciError(code, 'm').status).toBe(status);
    expect(statusOf(code)).toBe(status);
  });

  it('serializes as the distribution-spec error body', () => {
    expect(new OciError('MANIFEST_INVALID', 'bad', 'manifests[0].size').toJSON()).toEqual({
      errors: [{ code: 'MANIFEST_INVALID', message: 'bad', detail: 'manifests[0].size' }],
    });
    expect(new OciError('UNKNOWN', 'x').toJSON()).toEqual({ errors: [{ code: 'UNKNOWN', message: 'x' }] });
  });
});
