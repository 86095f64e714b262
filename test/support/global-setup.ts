// The runner's global setup: a folder where every test worker records the process groups
// it starts (test/support/processes.ts). Teardown kills whatever is still recorded there:
// groups of a worker that was killed outright and could run no exit handler.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROCESS_DIR_ENV, killRegisteredGroups } from './processes.js';

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'regshim-test-processes-'));
  // Workers start after global setup and inherit the environment.
  process.env[PROCESS_DIR_ENV] = dir;
  return () => {
    const killed = killRegisteredGroups(dir);
    if (killed > 0) process.stderr.write(`global teardown: killed ${killed} process group(s) left by a test worker\n`);
    rmSync(dir, { recursive: true, force: true });
  };
}
