// Failed logins are limited per user and per client address, in fixed windows. An attempt
// counts from the moment its check starts (concurrent guesses cannot all slip under the
// limit) and is given back when the password was right.
import { LRUCache } from 'lru-cache';

export interface FailureLimitSettings {
  readonly perUser: number;
  readonly perAddress: number;
  readonly windowMs: number;
}

/** Which limit was reached, and when the window ends. */
export interface Limited {
  readonly limit: 'user' | 'address';
  readonly retryAfterS: number;
}

interface Window {
  count: number;
  readonly endsAt: number;
}

/** Users and addresses tracked at once; beyond it the oldest windows are forgotten. */
const TRACKED = 10_000;

export class FailureLimits {
  private readonly users: LRUCache<string, Window>;
  private readonly addresses: LRUCache<string, Window>;

  constructor(private readonly settings: FailureLimitSettings) {
    this.users = new LRUCache({ max: TRACKED, ttl: settings.windowMs });
    this.addresses = new LRUCache({ max: TRACKED, ttl: settings.windowMs });
  }

  /** Undefined when an attempt may be checked, else the limit reached. */
  limited(user: string, address: string, now = Date.now()): Limited | undefined {
    const byUser = this.users.get(user);
    if (byUser && byUser.count >= this.settings.perUser) return { limit: 'user', retryAfterS: secondsUntil(byUser.endsAt, now) };
    const byAddress = this.addresses.get(address);
    if (byAddress && byAddress.count >= this.settings.perAddress) return { limit: 'address', retryAfterS: secondsUntil(byAddress.endsAt, now) };
    return undefined;
  }

  /** A check starts: it counts as a failure until succeeded() says otherwise. */
  attempt(user: string, address: string, now = Date.now()): void {
    this.count(this.users, user, 1, now);
    this.count(this.addresses, address, 1, now);
  }

  succeeded(user: string, address: string, now = Date.now()): void {
    this.count(this.users, user, -1, now);
    this.count(this.addresses, address, -1, now);
  }

  private count(windows: LRUCache<string, Window>, key: string, delta: number, now: number): void {
    const window = windows.get(key);
    if (window) {
      window.count = Math.max(0, window.count + delta);
      return;
    }
    if (delta > 0) windows.set(key, { count: delta, endsAt: now + this.settings.windowMs });
  }
}

function secondsUntil(endsAt: number, now: number): number {
  return Math.max(1, Math.ceil((endsAt - now) / 1000));
}
