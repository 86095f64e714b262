// What distribution would read as form values, as Go's mime.ParseMediaType and url.ParseQuery read it.
import { describe, expect, it } from 'vitest';
import { formValuesRefusal, mediaTypeOf } from '../../src/access/form-body.js';

describe('mediaTypeOf, as Go reads a Content-Type', () => {
  it.each([
    ['application/x-www-form-urlencoded', 'application/x-www-form-urlencoded'],
    ['Application/X-WWW-Form-URLEncoded', 'application/x-www-form-urlencoded'],
    ['multipart/form-data; boundary=xyz', 'multipart/form-data'],
    ['MULTIPART/FORM-DATA;boundary="a b"', 'multipart/form-data'],
    ['  multipart/form-data  ; boundary=x', 'multipart/form-data'],
    ['\tapplication/x-www-form-urlencoded\t;charset=utf-8', 'application/x-www-form-urlencoded'],
    // A parameter Go cannot parse still gives the type (ErrInvalidMediaParameter).
    ['application/x-www-form-urlencoded; ;;=', 'application/x-www-form-urlencoded'],
    ['application/octet-stream', 'application/octet-stream'],
    ['', ''],
  ])('%j -> %j', (header, type) => {
    expect(mediaTypeOf(header)).toBe(type);
  });
});

describe('formValuesRefusal', () => {
  it.each([
    'application/x-www-form-urlencoded',
    'APPLICATION/x-www-form-urlencoded; charset=utf-8',
    'multipart/form-data; boundary=----x',
    ' Multipart/Form-Data ',
  ])('a form body (%j) is refused', (contentType) => {
    expect(formValuesRefusal({ 'content-type': contentType }, '')).toMatch(/must not carry a form body/);
  });

  it('a Content-Type beyond ASCII is refused: Go lower-cases U+0130 to i', () => {
    expect(formValuesRefusal({ 'content-type': Buffer.from('multİpart/form-data; boundary=x').toString('latin1') }, '')).toMatch(/ASCII/);
  });

  it.each([
    [undefined, 'mount=sha256:0&from=team/a'],
    ['application/octet-stream', ''],
    ['application/vnd.oci.image.manifest.v1+json', ''],
    // Go's multipart reader for forms takes multipart/form-data only.
    ['multipart/mixed; boundary=x', ''],
    ['text/plain;charset=UTF-8', ''],
  ])('what registry clients send passes: %j with query %j', (contentType, query) => {
    expect(formValuesRefusal(contentType === undefined ? {} : { 'content-type': contentType }, query)).toBeUndefined();
  });

  it('a ";" in the query is refused: old Go splits on it, new Go drops the pair', () => {
    expect(formValuesRefusal({}, 'mount=sha256:0;from=other/y')).toMatch(/";"/);
  });
});
