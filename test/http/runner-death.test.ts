// Child processes are started detached, in their own process groups: a test runner that
// dies must not leave them running. A stand-in runner (a Node process using
// test/support/processes.ts) starts a process group, then dies in each way a runner can.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Cleanup } from '../support/cleanup.js';
import { PROCESS_DIR_ENV, killRegisteredGroups, waitFor } from '../support/processes.js';

const processesTs = join(import.meta.dirname, '..', 'support', 'processes.ts');
const cleanup = new Cleanup();
afterAll(() => cleanup.run());

type Death = 'uncaught error' | 'SIGTERM' | 'SIGINT' | 'SIGKILL';

/** Starts a stand-in runner whose child group runs `sh -c 'sleep 600 & sleep 600'`; resolves the group and how to kill the runner. */
async function standInRunner(dir: string, death: Death) {
  const script = `
    const { startProcess } = await import(${JSON.stringify(processesTs)});
    const p = await startProcess({ cmd: 'sh', args: ['-c', 'sleep 600 & sleep 600'], logFile: ${JSON.stringify(join(dir, 'sh.log'))}, leftovers: [${JSON.stringify(join(dir, 'leftover'))}] });
    process.stdout.write(p.pid + '\\n');
    ${death === 'uncaught error' ? "setTimeout(() => { throw new Error('the runner fails'); }, 100);" : 'setInterval(() => undefined, 1000);'}
  `;
  // process.execPath is Node 24 (the project's node), which runs .ts files as they are.
  const runner = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, [PROCESS_DIR_ENV]: join(dir, 'registry') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => runner.once('exit', () => resolve()));
  const group = await new Promise<number>((resolve, reject) => {
    let out = '';
    let err = '';
    runner.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
    runner.stderr.on('data', (b: Buffer) => (err += b.toString()));
    runner.once('exit', (code) => reject(new Error(`stand-in runner exited ${code} before starting its child: ${err}`)));
  });
  return { runner, group, exited };
}

function groupAlive(group: number): boolean {
  try {
    process.kill(-group, 0);
    return true;
  } catch {
    return false;
  }
}

describe('a test runner that dies leaves no process behind', () => {
  it.each<Death>(['uncaught error', 'SIGTERM', 'SIGINT', 'SIGKILL'])('%s', async (death) => {
    const dir = await cleanup.tempDir('regshim-runner-death-');
    await mkdir(join(dir, 'registry'));
    await mkdir(join(dir, 'leftover'));
    const { runner, group, exited } = await standInRunner(dir, death);
    try {
      expect(groupAlive(group)).toBe(true);
      if (death !== 'uncaught error') runner.kill(death);
      await exited;
      if (death === 'SIGKILL') {
        // No handler runs in a process killed outright: the global teardown sweeps the registry.
        expect(groupAlive(group)).toBe(true);
        expect(killRegisteredGroups(join(dir, 'registry'))).toBe(1);
      }
      await waitFor(async () => !groupAlive(group), { timeoutMs: 5_000, what: `process group ${group} to be gone` });
      expect(existsSync(join(dir, 'leftover'))).toBe(false);
    } finally {
      try {
        process.kill(-group, 'SIGKILL');
      } catch {
        // gone, as it should be
      }
    }
  });
});
