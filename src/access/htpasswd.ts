// The users who may log in to regshim, from an htpasswd file that is read again when it
// changes: a user removed from it is refused within seconds, without a restart.
import { randomInt } from 'node:crypto';
import { type Stats, statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import type { Logger } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';

export interface Htpasswd {
  readonly file: string;
  /** user -> bcrypt hash, as read at start. */
  readonly users: ReadonlyMap<string, string>;
}

const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;
const BCRYPT_ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** How often the file's stat is compared: a ConfigMap or Secret update swaps a symlink, which fs.watch misses. */
const POLL_MS = 2_000;

/** `user:$2y$…` lines; anything but bcrypt is refused, since the rest are weak. */
export function parseHtpasswd(text: string, file: string): Map<string, string> {
  const users = new Map<string, string>();
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    const hash = line.slice(colon + 1);
    if (colon < 1 || !BCRYPT.test(hash)) {
      throw new Error(`${file} line ${i + 1} is not user:bcrypt-hash (make entries with htpasswd -B)`);
    }
    users.set(line.slice(0, colon), hash);
  }
  if (users.size === 0) throw new Error(`${file} holds no user: add one with htpasswd -B ${file} <user>`);
  return users;
}

/**
 * A bcrypt hash that matches no password, at the highest cost of the file's hashes: an
 * unknown user is checked against it, so it costs what a wrong password costs and the
 * answer's timing does not tell which users exist.
 */
export function unmatchableHash(users: ReadonlyMap<string, string>): string {
  const cost = Math.max(...[...users.values()].map((h) => Number(BCRYPT.exec(h)?.[1] ?? 10)));
  let rest = '';
  for (let i = 0; i < 53; i++) rest += BCRYPT_ALPHABET[randomInt(BCRYPT_ALPHABET.length)];
  return `$2b$${String(cost).padStart(2, '0')}$${rest}`;
}

/** The users of an htpasswd file, read again when its stat changes and when asked (SIGHUP). */
export class HtpasswdUsers {
  private current: ReadonlyMap<string, string>;
  private unmatchable: string;
  private signature: string;
  private readonly timer: NodeJS.Timeout;
  private reading: Promise<void> | undefined;

  constructor(
    private readonly source: Htpasswd,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {
    this.current = source.users;
    this.unmatchable = unmatchableHash(source.users);
    this.signature = signatureOf(() => statSync(source.file));
    this.timer = setInterval(() => void this.poll(), POLL_MS).unref();
  }

  get users(): ReadonlyMap<string, string> {
    return this.current;
  }

  /** What an unknown user's password is checked against. */
  get unmatchableHash(): string {
    return this.unmatchable;
  }

  /** Reads the file now; a file that cannot be read or parsed keeps the users there were. */
  reload(why: 'changed' | 'signal'): Promise<void> {
    this.reading ??= this.read(why).finally(() => (this.reading = undefined));
    return this.reading;
  }

  close(): void {
    clearInterval(this.timer);
  }

  private async poll(): Promise<void> {
    const signature = await stat(this.source.file).then((s) => signatureOf(() => s), () => 'missing');
    if (signature !== this.signature) await this.reload('changed');
  }

  private async read(why: 'changed' | 'signal'): Promise<void> {
    const file = this.source.file;
    try {
      const before = await stat(file);
      const users = parseHtpasswd(await readFile(file, 'utf8'), file);
      this.signature = signatureOf(() => before);
      this.current = users;
      this.unmatchable = unmatchableHash(users);
      this.metrics.htpasswdReloads.inc({ result: 'ok' });
      this.log.info({ file, why, users: users.size }, 'htpasswd file read again');
    } catch (err) {
      // Not again until it changes once more; the message names the line, never a hash.
      this.signature = await stat(file).then((s) => signatureOf(() => s), () => 'missing');
      this.metrics.htpasswdReloads.inc({ result: 'failed' });
      this.log.error({ file, why, problem: (err as Error).message }, 'htpasswd file could not be read again; the users read before stay');
    }
  }
}

function signatureOf(stats: () => Stats): string {
  try {
    const s = stats();
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return 'missing';
  }
}
