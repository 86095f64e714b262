import { describe, expect, it } from 'vitest';
import { publicOrigin, rewriteLink, rewriteResponseHeaders, rewriteUrl } from '../../src/passthrough/rewrite.js';

const upstream = new URL('http://127.0.0.1:5001');
const shim = 'http://localhost:5000';

describe('rewriteUrl', () => {
  it.each([
    ['an upload Location on the upstream', 'http://127.0.0.1:5001/v2/app/blobs/uploads/u1?_state=a%2Bb%3D', 'http://localhost:5000/v2/app/blobs/uploads/u1?_state=a%2Bb%3D'],
    ['the upstream with its default port written out', 'http://127.0.0.1:5001/v2/', 'http://localhost:5000/v2/'],
    ['a relative Location', '/v2/app/blobs/uploads/u1?_state=x', '/v2/app/blobs/uploads/u1?_state=x'],
    ['a presigned S3 redirect', 'https://bucket.s3.amazonaws.com/blob?X-Amz-Signature=abc', 'https://bucket.s3.amazonaws.com/blob?X-Amz-Signature=abc'],
    ['the same host on another port', 'http://127.0.0.1:5002/v2/', 'http://127.0.0.1:5002/v2/'],
    ['https on the upstream host:port', 'https://127.0.0.1:5001/v2/', 'https://127.0.0.1:5001/v2/'],
    ['a query without a path', 'http://127.0.0.1:5001?x=1', 'http://localhost:5000?x=1'],
  ])('%s', (_what, value, expected) => {
    expect(rewriteUrl(value, upstream, shim)).toBe(expected);
  });

  it('matches an https upstream on its default port', () => {
    expect(rewriteUrl('https://registry.example.com:443/v2/x', new URL('https://registry.example.com'), shim)).toBe('http://localhost:5000/v2/x');
  });
});

describe('rewriteLink', () => {
  it('rewrites each absolute link on the upstream and keeps parameters', () => {
    const link = '<http://127.0.0.1:5001/v2/_catalog?last=b&n=2>; rel="next", </v2/x?n=1>; rel="prev"';
    expect(rewriteLink(link, upstream, shim)).toBe('<http://localhost:5000/v2/_catalog?last=b&n=2>; rel="next", </v2/x?n=1>; rel="prev"');
  });
});

describe('rewriteResponseHeaders', () => {
  it('rewrites Location and Link in place, whatever the status', () => {
    const headers: Record<string, string | string[] | undefined> = {
      location: 'http://127.0.0.1:5001/v2/app/blobs/uploads/u',
      link: ['<http://127.0.0.1:5001/v2/app/tags/list?n=1&last=a>; rel="next"'],
      'docker-upload-uuid': 'u',
    };
    rewriteResponseHeaders(headers, upstream, shim);
    expect(headers).toEqual({
      location: 'http://localhost:5000/v2/app/blobs/uploads/u',
      link: ['<http://localhost:5000/v2/app/tags/list?n=1&last=a>; rel="next"'],
      'docker-upload-uuid': 'u',
    });
  });
});

describe('publicOrigin', () => {
  it.each([
    [{ host: 'shim:5000' }, false, 'http://shim:5000'],
    [{ host: 'shim:5000' }, true, 'https://shim:5000'],
    [{ host: 'backend:5000', 'x-forwarded-host': 'regshim.example', 'x-forwarded-proto': 'https' }, false, 'https://regshim.example'],
    [{ host: 'backend:5000', 'x-forwarded-host': 'a.example:8443, proxy.internal' }, false, 'http://a.example:8443'],
    [{ host: 'backend:5000', 'x-forwarded-host': 'evil/path' }, false, 'http://backend:5000'],
    [{ host: 'bad host' }, false, 'http://127.0.0.1:5000'],
    [{ host: 'shim', 'x-forwarded-proto': 'HTTPS' }, false, 'https://shim'],
    [{ host: 'shim', 'x-forwarded-proto': 'gopher' }, true, 'https://shim'],
    [{ host: 'shim', 'x-forwarded-proto': 'https' }, false, 'https://shim'],
    [{ host: 'shim', 'x-forwarded-proto': 'javascript' }, false, 'http://shim'],
    [{}, false, 'http://127.0.0.1:5000'],
  ])('%j tls=%s -> %s', (headers, tls, origin) => {
    expect(publicOrigin(headers, tls, '127.0.0.1:5000')).toBe(origin);
  });
});
