import { describe, expect, it } from 'vitest';
import { isDigest, isTag, isVerifiableDigest, parseRoute } from '../../src/registry/routes.js';

describe('parseRoute', () => {
  it.each([
    ['/v2/', { kind: 'base' }],
    ['/v2', { kind: 'base' }],
    ['/v2/_catalog', { kind: 'catalog' }],
    ['/v2/team/app/manifests/cache', { kind: 'manifest', name: 'team/app', reference: 'cache' }],
    ['/v2/a/b/c/manifests/sha256:abc', { kind: 'manifest', name: 'a/b/c', reference: 'sha256:abc' }],
    ['/v2/app/blobs/sha256:abc', { kind: 'blob', name: 'app', digest: 'sha256:abc' }],
    ['/v2/app/blobs/uploads/', { kind: 'upload', name: 'app', session: undefined }],
    ['/v2/app/blobs/uploads/5f1e-uuid', { kind: 'upload', name: 'app', session: '5f1e-uuid' }],
    ['/v2/app/tags/list', { kind: 'tags', name: 'app' }],
    ['/v2/app/referrers/sha256:abc', { kind: 'referrers', name: 'app', digest: 'sha256:abc' }],
    ['/v2/my.registry_name/sub-path__x/manifests/v1.0', { kind: 'manifest', name: 'my.registry_name/sub-path__x', reference: 'v1.0' }],
    // manifests is a path component of the name here, not the endpoint
    ['/v2/manifests/manifests/latest', { kind: 'manifest', name: 'manifests', reference: 'latest' }],
  ])('%s', (path, route) => {
    expect(parseRoute(path)).toEqual(route);
  });

  it.each(['/', '/healthz', '/v2/UPPER/manifests/x', '/v2/app/manifests/', '/v2/app/manifests/a/b', '/v2/app/tags/other', '/v2/app/unknown/x', '/v3/app/manifests/x', '/v2/-bad/manifests/x'])(
    '%s is other',
    (path) => {
      expect(parseRoute(path)).toEqual({ kind: 'other' });
    },
  );
});

describe('references', () => {
  it.each([
    ['latest', true, false],
    ['cache', true, false],
    ['v1.2.3-rc_1', true, false],
    ['a'.repeat(128), true, false],
    ['a'.repeat(129), false, false],
    ['.hidden', false, false],
    [`sha256:${'a'.repeat(64)}`, false, true],
    ['sha256:abc', false, true],
    ['multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8', false, true],
  ])('%s: tag %s, digest %s', (ref, tag, digest) => {
    expect(isTag(ref)).toBe(tag);
    expect(isDigest(ref)).toBe(digest);
  });

  it.each([
    [`sha256:${'a'.repeat(64)}`, true],
    [`sha512:${'a'.repeat(128)}`, true],
    [`sha256:${'A'.repeat(64)}`, false],
    [`sha256:${'a'.repeat(63)}`, false],
    [`sha512:${'a'.repeat(64)}`, false],
    [`md5:${'a'.repeat(32)}`, false],
  ])('verifiable %s: %s', (d, ok) => {
    expect(isVerifiableDigest(d)).toBe(ok);
  });
});
