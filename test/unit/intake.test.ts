import { describe, expect, it } from 'vitest';
import { ByteBudget } from '../../src/intake/budget.js';
import { isRegistryApi, parseTarget } from '../../src/intake/target.js';

describe('parseTarget', () => {
  it.each([
    ['/v2/', '/v2/'],
    ['/v2/team/app/manifests/sha256:abc', '/v2/team/app/manifests/sha256:abc'],
    ['/v2/a/blobs/uploads/u?_state=x%3D%3D&digest=sha256:0', '/v2/a/blobs/uploads/u?_state=x%3D%3D&digest=sha256:0'],
    ['/v2/a/tags/list?n=10&last=v1.2', '/v2/a/tags/list?n=10&last=v1.2'],
    ['http://a:99999/v2/', '/v2/'],
    ['HTTPS://[::1/v2/x?y', '/v2/x?y'],
    ['http://host', '/'],
  ])('%s passes as %s', (raw, path) => {
    expect(parseTarget(raw)).toMatchObject({ ok: true, path });
  });

  it.each([
    '*', 'v2/', 'registry.example:443', 'http:/v2/', '//v2/', '/v2//a', '/v2/./a', '/v2/a/..', '/v2/a/%2e%2E/b',
    '/v2/a%2Fb', '/v2/a%5Cb', '/v2/a\\b', '/v2/a%00', '/v2/a%', '/v2/a%zz', '/v2/a b', '/v2/é', '/v2/?a="b"', '/v2/?a b', '/v2/#x',
  ])('%s is refused', (raw) => {
    expect(parseTarget(raw).ok).toBe(false);
  });

  it('knows the registry API from the rest', () => {
    expect(['/v2', '/v2/', '/v2/a/manifests/t'].every(isRegistryApi)).toBe(true);
    expect(['/', '/v20', '/metrics', '/x/v2/'].some(isRegistryApi)).toBe(false);
  });
});

describe('ByteBudget', () => {
  it('grants while bytes fit, then in arrival order as bytes are released', async () => {
    const budget = new ByteBudget(10);
    const a = await budget.acquire(6, 1000);
    const order: string[] = [];
    const b = budget.acquire(6, 1000).then((r) => (order.push('b'), r));
    const c = budget.acquire(2, 1000).then((r) => (order.push('c'), r));
    await new Promise((r) => setTimeout(r, 10));
    // c would fit now, but b came first: nobody overtakes.
    expect(order).toEqual([]);
    a?.();
    const [rb, rc] = await Promise.all([b, c]);
    expect(order).toEqual(['b', 'c']);
    expect(budget.inUse).toBe(8);
    rb?.();
    rb?.(); // a second release changes nothing
    rc?.();
    expect(budget.inUse).toBe(0);
  });

  it('gives up after the timeout, and when the signal aborts, without holding anything', async () => {
    const budget = new ByteBudget(4);
    const held = await budget.acquire(4, 1000);
    expect(await budget.acquire(1, 20)).toBeUndefined();
    const controller = new AbortController();
    const waiting = budget.acquire(1, 10_000, controller.signal);
    controller.abort();
    expect(await waiting).toBeUndefined();
    expect(budget.waiting).toBe(0);
    held?.();
    expect(budget.inUse).toBe(0);
  });

  it('lets a request larger than the whole budget through alone', async () => {
    const budget = new ByteBudget(4);
    const big = await budget.acquire(100, 10);
    expect(big).toBeDefined();
    expect(await budget.acquire(1, 10)).toBeUndefined();
    big?.();
    expect(await budget.acquire(1, 10)).toBeDefined();
  });
});
