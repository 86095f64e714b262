// bcrypt off the event loop: a few worker threads, started on the first check, and a
// bounded queue in front of them. A flood of wrong passwords fills the queue and is turned
// away (429) instead of stalling the requests of clients already signed in.
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

export interface PasswordCheckLimits {
  /** Threads checking passwords at once. */
  readonly threads: number;
  /** Checks waiting for a thread; past this they are refused. */
  readonly queue: number;
}

/** The queue is full: the check was not made. */
export class ChecksBusy extends Error {
  override name = 'ChecksBusy';
}

interface Job {
  readonly id: number;
  readonly password: string;
  readonly hash: string;
  resolve(ok: boolean): void;
  reject(err: Error): void;
}

interface Thread {
  readonly worker: Worker;
  job: Job | undefined;
  idle: NodeJS.Timeout | undefined;
}

/**
 * A thread idle this long ends: each holds some 14 MiB of RSS (a V8 isolate), and once
 * clients are signed in their checks are remembered, so a thread is rarely needed.
 */
const IDLE_MS = 10_000;
// bcryptjs needs little memory; a small heap keeps the thread's share small.
const RESOURCE_LIMITS = { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 };

// The thread runs the same kind of file as this one: .js when built, .ts under the tests (Node strips the types).
const WORKER_URL = new URL(`./bcrypt-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

export class PasswordChecks {
  private readonly threads: Thread[] = [];
  private readonly waiting: Job[] = [];
  private nextId = 0;
  private closed = false;

  constructor(private readonly limits: PasswordCheckLimits) {}

  /** Does `password` match the bcrypt `hash`? Rejects with ChecksBusy when the queue is full. */
  verify(password: string, hash: string): Promise<boolean> {
    if (this.closed) return Promise.reject(new Error('password checks are closed'));
    if (this.waiting.length >= this.limits.queue && !this.idleThread()) return Promise.reject(new ChecksBusy('too many password checks waiting'));
    return new Promise<boolean>((resolve, reject) => {
      this.waiting.push({ id: ++this.nextId, password, hash, resolve, reject });
      this.next();
    });
  }

  /** Threads started and not ended: busy or idle. */
  get threadCount(): number {
    return this.threads.length;
  }

  /** Checks running or waiting now. */
  get pending(): number {
    return this.waiting.length + this.threads.filter((t) => t.job).length;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.waiting.splice(0)) job.reject(new Error('password checks are closed'));
    await Promise.all(this.threads.splice(0).map((t) => {
      clearTimeout(t.idle);
      return t.worker.terminate();
    }));
  }

  private next(): void {
    if (this.waiting.length === 0) return;
    const thread = this.idleThread() ?? this.startThread();
    const job = thread && this.waiting.shift();
    if (!thread || !job) return;
    thread.job = job;
    clearTimeout(thread.idle);
    thread.worker.ref();
    thread.worker.postMessage({ id: job.id, password: job.password, hash: job.hash });
  }

  private idleThread(): Thread | undefined {
    return this.threads.find((t) => !t.job);
  }

  private end(thread: Thread): void {
    if (thread.job || !this.forget(thread)) return;
    void thread.worker.terminate();
  }

  /** Takes a thread out of the pool; false when it was out already. */
  private forget(thread: Thread): boolean {
    const i = this.threads.indexOf(thread);
    if (i === -1) return false;
    this.threads.splice(i, 1);
    return true;
  }

  private startThread(): Thread | undefined {
    if (this.threads.length >= this.limits.threads) return undefined;
    const thread: Thread = { worker: new Worker(WORKER_URL, { resourceLimits: RESOURCE_LIMITS }), job: undefined, idle: undefined };
    this.threads.push(thread);
    thread.worker.on('message', (msg: { id: number; ok: boolean }) => {
      const job = thread.job;
      if (!job || job.id !== msg.id) return;
      thread.job = undefined;
      // An idle thread does not keep the process alive, and ends after a while.
      thread.worker.unref();
      thread.idle = setTimeout(() => this.end(thread), IDLE_MS).unref();
      job.resolve(msg.ok);
      this.next();
    });
    const lost = (err: Error) => {
      clearTimeout(thread.idle);
      if (!this.forget(thread)) return;
      thread.job?.reject(err);
      if (!this.closed) this.next();
    };
    thread.worker.on('error', lost);
    thread.worker.on('exit', (code) => lost(new Error(`a password check thread exited (${code})`)));
    return thread;
  }
}
