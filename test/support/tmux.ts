// A real terminal for tests: a tmux server on a socket of its own, one window running a
// command, its screen captured as a person sees it (text, and with its colors as escapes).
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeTempDir, removeTempDir, runCommand, waitFor } from './processes.js';

export interface Terminal {
  /** The screen's text, trailing blanks of each line and trailing empty lines removed. */
  screen(): Promise<string>;
  /** The screen with its SGR escapes (colors, bold), as tmux renders them. */
  screenWithColors(): Promise<string>;
  /** Waits until the screen matches. */
  waitFor(pattern: RegExp, what: string, timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

/** Runs `command` (a shell line) in a `width` x `height` terminal; `env` is its whole environment. */
export async function startTerminal(command: string, env: NodeJS.ProcessEnv, width = 200, height = 50): Promise<Terminal> {
  const dir = await makeTempDir('regshim-tmux-');
  const socket = join(dir, 'tmux.sock');
  const tmux = (...args: string[]) => runCommand('tmux', ['-S', socket, ...args], { env, timeoutMs: 10_000 });
  // The pane stays after the command ends, so its last screen can still be read.
  const started = await tmux('-f', '/dev/null', 'new-session', '-d', '-x', String(width), '-y', String(height), `${command}; sleep 600`);
  if (started.code !== 0) {
    await removeTempDir(dir);
    throw new Error(`tmux new-session failed: ${started.stderr}`);
  }
  const pid = Number((await tmux('display-message', '-p', '#{pid}')).stdout.trim());
  const capture = async (colors: boolean) => {
    // -J: a line the terminal wrapped comes back as the one line it was written as.
    const out = await tmux('capture-pane', '-p', '-J', ...(colors ? ['-e'] : []), '-t', '0');
    return out.stdout.replace(/[ \t]+$/gm, '').replace(/\n+$/, '');
  };
  return {
    screen: () => capture(false),
    screenWithColors: () => capture(true),
    async waitFor(pattern, what, timeoutMs = 20_000) {
      let last = '';
      try {
        await waitFor(async () => pattern.test((last = await capture(false))), { timeoutMs, what });
      } catch (err) {
        throw new Error(`${(err as Error).message}; the screen:\n${last}`, { cause: err });
      }
      return last;
    },
    async stop() {
      await tmux('kill-server');
      // kill-server ends the window's processes with SIGHUP; make sure of the server itself.
      for (let i = 0; i < 50 && Number.isInteger(pid) && pid > 0 && isAlive(pid); i++) await sleep(20);
      if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) process.kill(pid, 'SIGKILL');
      await removeTempDir(dir);
    },
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
