// Paths a daemon creates outside its temp folder whatever its config says. Those that did
// not exist before it started are removed after it stops, so the machine stays clean.
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';

export interface MachinePaths {
  /** The paths this start may create: also the leftovers for a runner that dies. */
  created: string[];
  remove(): Promise<void>;
}

/** Call before the daemon starts. */
export function machinePaths(paths: string[]): MachinePaths {
  const created = paths.filter((p) => !existsSync(p));
  return {
    created,
    async remove() {
      for (const p of created) await rm(p, { recursive: true, force: true });
    },
  };
}
