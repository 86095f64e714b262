// `regshim --print-memory-budget`: the sum for the flags given, from the built CLI.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { formatMemoryBudget, memoryBudget } from '../../src/memory-budget.js';
import { runCommand } from '../support/processes.js';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'regshim.js');

describe('regshim --print-memory-budget', () => {
  it('prints the budget of the flags and environment given, and exits 0 without serving', async () => {
    const args = ['--upstream', 'https://registry.example.com', '--cache-max-bytes', '32MiB', '--print-memory-budget'];
    const r = await runCommand(process.execPath, [bin, ...args], { env: { ...process.env, REGSHIM_UPSTREAM_CONNECTIONS: '16' }, timeoutMs: 30_000 });
    expect(r.code).toBe(0);
    const expected = memoryBudget(parseConfig({ upstream: 'https://registry.example.com', cacheMaxBytes: '32MiB', upstreamConnections: '16' }));
    expect(r.stdout).toBe(formatMemoryBudget(expected));
    expect(r.stdout).toMatch(/^memory limit +\d+\.\d MiB {2}\d+Mi$/m);
  });

  it('needs the same flags as serving: without --upstream it exits 2', async () => {
    const r = await runCommand(process.execPath, [bin, '--print-memory-budget'], { env: { ...process.env, REGSHIM_UPSTREAM: '' }, timeoutMs: 30_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--upstream is required/);
  });
});
