// The memory budget: each term scales with its flag and nothing else, and the sum is theirs.
import { describe, expect, it } from 'vitest';
import { type RawConfig, parseConfig } from '../../src/config.js';
import { type MemoryBudget, formatMemoryBudget, memoryBudget } from '../../src/memory-budget.js';

const MiB = 1024 * 1024;
const budget = (raw: Omit<RawConfig, 'upstream'> = {}, upstream = 'http://registry:5000') => memoryBudget(parseConfig({ upstream, ...raw }));
const term = (b: MemoryBudget, name: string) => b.terms.find((t) => t.name === name)?.bytes;

describe('memoryBudget', () => {
  it('sums its terms: 618 MiB with the default flags and a plain-http upstream', () => {
    const b = budget();
    expect(b.perProcess).toBe(b.terms.reduce((sum, t) => sum + t.bytes, 0));
    expect(b.total).toBe(b.perProcess);
    expect(b.total).toBe(618 * MiB);
  });

  it('the digest map term is --cache-max-bytes times 2.5', () => {
    expect(term(budget({ cacheMaxBytes: '16MiB' }), 'digest map')).toBe(40 * MiB);
    expect(budget({ cacheMaxBytes: '16MiB' }).total).toBe(budget().total - 2.5 * 48 * MiB);
  });

  it('manifests in flight count once, and their heap garbage 1.5 times more', () => {
    const b = budget({ maxManifestBytesInFlight: '32MiB' });
    expect(term(b, 'manifests in flight')).toBe(32 * MiB);
    expect(term(b, 'manifest garbage on the heap')).toBe(48 * MiB);
    expect(b.total).toBe(budget().total - 2.5 * 32 * MiB);
  });

  it('client connections each hold a head of up to --max-header-bytes and 16 KiB', () => {
    expect(term(budget({ maxClientConnections: '100', maxHeaderBytes: '8KiB' }), 'client connections')).toBe(100 * 24 * 1024);
  });

  it('relay buffers count for a plain-http upstream only; upstream connections for both pools', () => {
    expect(term(budget({ upstreamConnections: '8' }), 'blob relay buffers')).toBe((8 * 4 + 16) * 256 * 1024);
    expect(term(budget({ upstreamConnections: '8' }, 'https://registry.example.com'), 'blob relay buffers')).toBe(0);
    expect(term(budget({ upstreamConnections: '8' }), 'upstream connections')).toBe(8 * 160 * 1024);
  });

  it('password checks add nothing without --auth-htpasswd, and 24 MiB a --auth-check-threads with it', () => {
    expect(term(budget(), 'password checks')).toBe(0);
    const htpasswd = `ci:$2y$04$${'a'.repeat(53)}\n`;
    const withLogins = (threads: string) =>
      memoryBudget(parseConfig({ upstream: 'http://registry:5000', authHtpasswd: '/h', authCheckThreads: threads }, { read: () => htpasswd }));
    expect(term(withLogins('1'), 'password checks')).toBe(24 * MiB);
    expect(term(withLogins('3'), 'password checks')).toBe(3 * 24 * MiB);
  });

  it('with --workers, every worker has the whole budget, and the primary is added', () => {
    const one = budget();
    const three = budget({ workers: '3' });
    expect(three.perProcess).toBe(one.perProcess);
    expect(three.total).toBe(80 * MiB + 3 * one.perProcess);
  });

  it('prints a term a line, and the limit in Mi', () => {
    const text = formatMemoryBudget(budget({ workers: '2' }));
    expect(text.split('\n').filter(Boolean)).toHaveLength(budget().terms.length + 3);
    expect(text).toMatch(/^digest map +160\.0 MiB {2}--cache-max-bytes x 2\.5$/m);
    expect(text).toMatch(/^memory limit +1316\.0 MiB {2}1316Mi$/m);
  });
});
