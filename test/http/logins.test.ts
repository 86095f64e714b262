// Logging in to regshim (--auth-htpasswd): the file is read again when it changes and on
// SIGHUP, and a response's timing does not tell which users exist.
import { readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuth } from '../support/auth-upstream.js';
import { Cleanup } from '../support/cleanup.js';
import { waitFor } from '../support/processes.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { startShim, startShimProcess } from '../support/regshim.js';

// Base64 of these ends in padding, so the same credentials have a second encoding without it.
const OPS_PASSWORD = 'ops-pw-reload-1';
const CI_PASSWORD = 'ci-pw-reload-22';

const cleanup = new Cleanup();
let registry: Registry;
let dir: string;

beforeAll(async () => {
  dir = await cleanup.tempDir('regshim-logins-');
  registry = await cleanup.track(startRegistry());
});
afterAll(() => cleanup.run());

async function status(url: string, authorization: string): Promise<number> {
  // A connection each: under --workers each may land on another process.
  const agent = new Agent({ pipelining: 0 });
  try {
    const res = await fetch(`${url}/v2/`, { headers: { authorization }, dispatcher: agent } as RequestInit);
    await res.arrayBuffer();
    return res.status;
  } finally {
    await agent.close();
  }
}

describe('the htpasswd file is read again', () => {
  it('a user removed from it is refused within seconds, with a remembered header and with a new encoding; a broken file keeps the users', async () => {
    const file = join(dir, 'changed.htpasswd');
    await writeFile(file, `ci:${bcrypt.hashSync(CI_PASSWORD, 5)}\nops:${bcrypt.hashSync(OPS_PASSWORD, 5)}\n`);
    const shim = await cleanup.track(startShim(registry.url, { authHtpasswd: file }));
    const ops = basicAuth('ops', OPS_PASSWORD);
    expect(ops.endsWith('=')).toBe(true);
    const opsUnpadded = ops.replace(/=+$/, '');
    expect(await status(shim.url, ops)).toBe(200);
    expect(await status(shim.url, opsUnpadded)).toBe(200);

    const ciLine = (await readFile(file, 'utf8')).split('\n')[0];
    await writeFile(file, `${ciLine}\n`);
    const removedAt = performance.now();
    await waitFor(async () => (await status(shim.url, ops)) === 401, { timeoutMs: 5_000, what: 'ops refused' });
    expect(performance.now() - removedAt).toBeLessThan(5_000);
    expect(await status(shim.url, opsUnpadded)).toBe(401);
    expect(await status(shim.url, basicAuth('ci', CI_PASSWORD))).toBe(200);

    await writeFile(file, 'ci:$apr1$not-bcrypt\n');
    await waitFor(async () => shim.logs.some((l) => String(l.msg).startsWith('htpasswd file could not be read again')), { timeoutMs: 5_000, what: 'the failed reading logged' });
    expect(await status(shim.url, basicAuth('ci', CI_PASSWORD))).toBe(200);
    const metrics = await (await fetch(`${shim.url}/metrics`)).text();
    expect(metrics).toMatch(/^regshim_htpasswd_reloads_total\{result="ok"\} 1$/m);
    expect(metrics).toMatch(/^regshim_htpasswd_reloads_total\{result="failed"\} 1$/m);
  }, 30_000);

  it('SIGHUP to the primary reads it again at once in every worker (--workers 2)', async () => {
    const file = join(dir, 'sighup.htpasswd');
    const line = (password: string) => `ops:${bcrypt.hashSync(password, 5)}\n`;
    await writeFile(file, line(OPS_PASSWORD));
    const shim = await cleanup.track(startShimProcess(registry.url, ['--auth-htpasswd', file, '--workers', '2']));
    await waitFor(async () => (await readFile(shim.logFile, 'utf8')).split('\n').filter((l) => l.includes('"msg":"listening"')).length === 2, { timeoutMs: 20_000, what: 'two workers listening', logFile: shim.logFile });
    const ops = basicAuth('ops', OPS_PASSWORD);
    for (let i = 0; i < 6; i++) expect(await status(shim.url, ops)).toBe(200);

    // Same size, same inode, the old mtime back: only the signal can tell the file changed.
    const before = await stat(file);
    await writeFile(file, line('another-password'));
    await utimes(file, before.atime, before.mtime);
    expect((await stat(file)).size).toBe(before.size);
    process.kill(shim.pid, 'SIGHUP');
    await waitFor(async () => (await readFile(shim.logFile, 'utf8')).split('\n').filter((l) => l.includes('htpasswd file read again')).length === 2, { timeoutMs: 3_000, what: 'both workers reading the file again', logFile: shim.logFile });
    for (let i = 0; i < 6; i++) expect(await status(shim.url, ops)).toBe(401);
    expect(await status(shim.url, basicAuth('ops', 'another-password'))).toBe(200);
  }, 60_000);
});

describe('timing does not tell users apart', () => {
  it('an unknown user costs what a wrong password for a known one costs', async () => {
    const file = join(dir, 'timing.htpasswd');
    await writeFile(file, `ci:${bcrypt.hashSync(CI_PASSWORD, 10)}\n`);
    const shim = await cleanup.track(startShim(registry.url, { authHtpasswd: file, authMaxFailuresPerUser: '1000', authMaxFailuresPerAddress: '1000' }));
    const timed = async (authorization: string) => {
      const started = performance.now();
      expect(await status(shim.url, authorization)).toBe(401);
      return performance.now() - started;
    };
    const unknown: number[] = [];
    const wrong: number[] = [];
    for (let i = 0; i < 7; i++) {
      unknown.push(await timed(basicAuth(`nobody-${i}`, `guess-${i}`)));
      wrong.push(await timed(basicAuth('ci', `guess-${i}`)));
    }
    const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)] ?? 0;
    const [u, w] = [median(unknown), median(wrong)];
    expect(Math.max(u, w) / Math.min(u, w), `medians: unknown ${u.toFixed(1)} ms, wrong password ${w.toFixed(1)} ms`).toBeLessThan(3);
  }, 30_000);
});
