// A stub docker-credential helper (a simulation of ecr-login, gcloud and the like): a shell
// script on PATH that records the host it is asked for and answers only for one host,
// with the password currently in its password file.
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface StubHelper {
  /** The `credHelpers` value: the program is docker-credential-<name>. */
  name: string;
  /** The folder to put first on PATH. */
  binDir: string;
  /** Hosts it was asked for, one per run. */
  runs(): Promise<string[]>;
  setPassword(password: string): Promise<void>;
}

export async function makeStubHelper(dir: string, opts: { host: string; username: string; password: string; delaySeconds?: number }): Promise<StubHelper> {
  const name = 'regshimstub';
  const runsFile = join(dir, 'helper-runs.log');
  const passwordFile = join(dir, 'helper-password');
  await writeFile(runsFile, '');
  await writeFile(passwordFile, opts.password);
  const script = join(dir, `docker-credential-${name}`);
  await writeFile(
    script,
    [
      '#!/bin/sh',
      '[ "$1" = get ] || exit 2',
      'read -r host',
      `echo "$host" >> '${runsFile}'`,
      // A slow helper (ecr-login calling AWS): a burst of requests arrives while it runs.
      `sleep ${opts.delaySeconds ?? 0}`,
      `if [ "$host" != '${opts.host}' ]; then echo "credentials not found in native keychain" >&2; exit 1; fi`,
      `printf '{"ServerURL":"%s","Username":"${opts.username}","Secret":"%s"}' "$host" "$(cat '${passwordFile}')"`,
      '',
    ].join('\n'),
  );
  await chmod(script, 0o755);
  return {
    name,
    binDir: dir,
    runs: async () => (await readFile(runsFile, 'utf8')).split('\n').filter(Boolean),
    setPassword: (password) => writeFile(passwordFile, password),
  };
}
