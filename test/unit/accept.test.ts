import { describe, expect, it } from 'vitest';
import { accepts, parseAccept, withType } from '../../src/registry/accept.js';

describe('Accept', () => {
  it.each([
    [undefined, []],
    ['', []],
    ['application/vnd.oci.image.index.v1+json, */*', ['application/vnd.oci.image.index.v1+json', '*/*']],
    ['Application/JSON;q=0.5 , text/plain', ['application/json', 'text/plain']],
    [['a/b', 'c/d, e/f'], ['a/b', 'c/d', 'e/f']],
  ])('parseAccept(%j)', (value, types) => {
    expect(parseAccept(value)).toEqual(types);
  });

  it('accepts a listed type or */*', () => {
    expect(accepts(['a/b'], 'a/b')).toBe(true);
    expect(accepts(['*/*'], 'a/b')).toBe(true);
    expect(accepts(['a/c'], 'a/b')).toBe(false);
  });

  it.each([
    [undefined, 'x/y'],
    ['a/b', 'a/b, x/y'],
    ['a/b, x/y', 'a/b, x/y'],
    [['a/b', 'c/d'], 'a/b, c/d, x/y'],
  ])('withType(%j, x/y) is %j', (value, expected) => {
    expect(withType(value, 'x/y')).toBe(expected);
  });
});
