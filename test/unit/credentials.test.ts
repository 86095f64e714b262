// Credentials' timing, on a fake clock: backoff while a helper fails, re-runs after a 401.
import { describe, expect, it } from 'vitest';
import { Credentials, HELPER_MAX_AGE_MS } from '../../src/registry/auth/credentials.js';

function missingHelper() {
  let clock = 1_000_000;
  const runs: string[] = [];
  const credentials = new Credentials(
    { kind: 'helper', helper: 'regshim-test-no-such-helper', source: 'test' },
    'registry.example',
    5_000,
    { helperRun: (result) => runs.push(result) },
    () => clock,
  );
  return { credentials, runs, advance: (ms: number) => (clock += ms) };
}

describe('Credentials from a helper', () => {
  it('a missing helper says how to fix it', async () => {
    const { credentials } = missingHelper();
    await expect(credentials.get()).rejects.toThrow(/docker-credential-regshim-test-no-such-helper is not on PATH: install it/);
  });

  it('backs off while the helper fails: 1 s, 2 s, 4 s … without running it in between', async () => {
    const { credentials, runs, advance } = missingHelper();
    await expect(credentials.get()).rejects.toThrow();
    await expect(credentials.get()).rejects.toThrow();
    expect(runs).toEqual(['failed']);
    advance(1_000);
    await expect(credentials.get()).rejects.toThrow();
    expect(runs).toEqual(['failed', 'failed']);
    advance(1_999);
    await expect(credentials.get()).rejects.toThrow();
    expect(runs).toHaveLength(2);
    advance(1);
    await expect(credentials.get()).rejects.toThrow();
    expect(runs).toHaveLength(3);
  });

  it('concurrent callers share one run', async () => {
    const { credentials, runs } = missingHelper();
    await Promise.allSettled(Array.from({ length: 20 }, () => credentials.get()));
    expect(runs).toEqual(['failed']);
  });

  it('static credentials are never re-asked, and rejecting them changes nothing', async () => {
    const credentials = new Credentials({ kind: 'basic', username: 'u', password: 'p', source: 's' }, 'h', 1_000, { helperRun: () => undefined });
    credentials.reject();
    expect(await credentials.get()).toMatchObject({ username: 'u', password: 'p' });
    expect(credentials.renewable()).toBe(false);
    expect(HELPER_MAX_AGE_MS).toBe(3_600_000);
  });
});
