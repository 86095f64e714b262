// The built CLI (bin/regshim.js, from dist/), run the way users run it, its stdout a pipe.
import { join } from 'node:path';
import { type RunResult, runCommand } from './processes.js';

export const bin = join(import.meta.dirname, '..', '..', 'bin', 'regshim.js');

/** Runs `regshim <args>`; REGSHIM_* settings of the test runner's own environment are not passed on. */
export function regshimCli(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGSHIM_') || k === 'REGSHIM_TEST_PROCESSES'));
  return runCommand(process.execPath, [bin, ...args], { env: { ...clean, ...env }, timeoutMs: 60_000 });
}
