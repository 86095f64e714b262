// Everything a suite starts is stopped in reverse order, even when beforeAll fails part-way.
import { makeTempDir, removeTempDir } from './processes.js';

export class Cleanup {
  private readonly steps: (() => Promise<void>)[] = [];

  /** Awaits something startable and schedules its stop(). */
  async track<T extends { stop(): Promise<void> }>(starting: Promise<T>): Promise<T> {
    const started = await starting;
    this.steps.push(() => started.stop());
    return started;
  }

  async tempDir(prefix: string): Promise<string> {
    const dir = await makeTempDir(prefix);
    this.steps.push(() => removeTempDir(dir));
    return dir;
  }

  /** Runs every step, newest first; rethrows the first failure after all have run. */
  async run(): Promise<void> {
    const errors: unknown[] = [];
    for (const step of this.steps.splice(0).reverse()) {
      await step().catch((err: unknown) => errors.push(err));
    }
    if (errors.length > 0) throw errors[0];
  }
}
