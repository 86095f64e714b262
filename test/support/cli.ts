// The built CLI (bin/regshim.js, from dist/), run the way users run it: its stdout a pipe,
// or a terminal (`script`) where a person would read the report.
import { join } from 'node:path';
import { type RunResult, runCommand } from './processes.js';

export const bin = join(import.meta.dirname, '..', '..', 'bin', 'regshim.js');

/** The test runner's environment without its REGSHIM_* settings. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGSHIM_') || k === 'REGSHIM_TEST_PROCESSES'));
}

/** Runs `regshim <args>`; REGSHIM_* settings of the test runner's own environment are not passed on. */
export function regshimCli(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return runCommand(process.execPath, [bin, ...args], { env: { ...cleanEnv(), ...env }, timeoutMs: 60_000 });
}

/**
 * Runs `regshim <args>` on a terminal, without color: what a person reads. Arguments must
 * need no shell quoting. The output comes as stdout, its line ends `\n`.
 */
export async function regshimOnTerminal(args: string[]): Promise<RunResult> {
  const unsafe = args.find((a) => !/^[\w@%+=:,./-]+$/.test(a));
  if (unsafe !== undefined) throw new Error(`an argument that needs shell quoting: ${unsafe}`);
  const r = await runCommand('script', ['-qec', [process.execPath, bin, ...args].join(' '), '/dev/null'], {
    env: { ...cleanEnv(), NO_COLOR: '1', TERM: 'dumb' },
    timeoutMs: 60_000,
  });
  return { ...r, stdout: r.stdout.replace(/\r/g, '') };
}
