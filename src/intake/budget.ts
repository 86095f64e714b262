// A bound on the bytes held at once (manifest bodies and their conversions). Takers wait in
// arrival order, up to a deadline: a push that waits a moment beats one that fails, and a
// waiting request holds no memory (its body stays unread in the kernel's buffers).

export type Release = () => void;

interface Waiter {
  readonly bytes: number;
  readonly grant: (release: Release | undefined) => void;
}

export class ByteBudget {
  private used = 0;
  private readonly queue: Waiter[] = [];

  constructor(readonly limit: number) {}

  /** Bytes held now. */
  get inUse(): number {
    return this.used;
  }

  /** Requests waiting for room. */
  get waiting(): number {
    return this.queue.length;
  }

  /**
   * Resolves with a release function once `bytes` fit, or with undefined when they did not
   * fit within `timeoutMs` or `signal` aborted first. Release exactly once.
   */
  acquire(bytes: number, timeoutMs: number, signal?: AbortSignal): Promise<Release | undefined> {
    const need = Math.min(bytes, this.limit);
    if (this.queue.length === 0 && this.used + need <= this.limit) return Promise.resolve(this.take(need));
    if (signal?.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const give = (release: Release | undefined) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        resolve(release);
      };
      const waiter: Waiter = { bytes: need, grant: give };
      const leave = () => {
        const i = this.queue.indexOf(waiter);
        if (i !== -1) this.queue.splice(i, 1);
        give(undefined);
        this.drain(); // the head may have been what blocked smaller takers behind it
      };
      const onAbort = () => leave();
      const timer = setTimeout(leave, timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiter);
    });
  }

  private take(bytes: number): Release {
    this.used += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used -= bytes;
      this.drain();
    };
  }

  private drain(): void {
    while (this.queue.length > 0) {
      const head = this.queue[0] as Waiter;
      if (this.used + head.bytes > this.limit) return;
      this.queue.shift();
      head.grant(this.take(head.bytes));
    }
  }
}
