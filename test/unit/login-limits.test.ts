// Failed logins counted per user and per address; password checks in a bounded thread pool.
import bcrypt from 'bcryptjs';
import { afterAll, describe, expect, it } from 'vitest';
import { FailureLimits } from '../../src/access/failure-limits.js';
import { parseHtpasswd, unmatchableHash } from '../../src/access/htpasswd.js';
import { ChecksBusy, PasswordChecks } from '../../src/access/password-checks.js';

describe('FailureLimits', () => {
  it('counts an attempt from its start, gives it back on success, and says when the window ends', () => {
    const limits = new FailureLimits({ perUser: 2, perAddress: 3, windowMs: 60_000 });
    const t0 = 1_000_000;
    limits.attempt('ci', 'a', t0);
    limits.attempt('ci', 'a', t0);
    expect(limits.limited('ci', 'a', t0 + 1_500)).toEqual({ limit: 'user', retryAfterS: 59 });
    limits.succeeded('ci', 'a', t0);
    expect(limits.limited('ci', 'a', t0)).toBeUndefined();
    limits.attempt('ops', 'a', t0);
    limits.attempt('dev', 'a', t0);
    expect(limits.limited('someone', 'a', t0)).toEqual({ limit: 'address', retryAfterS: 60 });
    expect(limits.limited('someone', 'b', t0)).toBeUndefined();
  });
});

describe('unmatchableHash', () => {
  it('has the highest cost of the file and matches nothing', () => {
    const users = parseHtpasswd(`a:${bcrypt.hashSync('x', 4)}\nb:${bcrypt.hashSync('y', 6)}\n`, 'f');
    const hash = unmatchableHash(users);
    expect(hash).toMatch(/^\$2b\$06\$[./A-Za-z0-9]{53}$/);
    expect(bcrypt.compareSync('', hash)).toBe(false);
    expect(bcrypt.compareSync('x', hash)).toBe(false);
  });
});

describe('PasswordChecks', () => {
  const checks = new PasswordChecks({ threads: 1, queue: 2 });
  afterAll(() => checks.close());

  it('checks off the event loop: right and wrong passwords', async () => {
    const hash = bcrypt.hashSync('right', 4);
    expect(await checks.verify('right', hash)).toBe(true);
    expect(await checks.verify('wrong', hash)).toBe(false);
  });

  it('refuses past the queue instead of waiting', async () => {
    const hash = bcrypt.hashSync('right', 8);
    const results = await Promise.allSettled([1, 2, 3, 4, 5].map(() => checks.verify('wrong', hash)));
    // One on the thread, two waiting, two turned away.
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).name))).toEqual([false, false, false, 'ChecksBusy', 'ChecksBusy']);
    expect(results[4]?.status === 'rejected' && results[4].reason instanceof ChecksBusy).toBe(true);
    expect(checks.pending).toBe(0);
  });
});

describe('PasswordChecks threads', () => {
  it('an idle thread ends after a while, and the next check starts another', async () => {
    const checks = new PasswordChecks({ threads: 1, queue: 1 });
    try {
      const hash = bcrypt.hashSync('right', 4);
      expect(await checks.verify('right', hash)).toBe(true);
      expect(checks.threadCount).toBe(1);
      await new Promise((r) => setTimeout(r, 10_500));
      expect(checks.threadCount).toBe(0);
      expect(await checks.verify('wrong', hash)).toBe(false);
    } finally {
      await checks.close();
    }
  }, 20_000);
});
