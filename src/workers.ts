// Several worker processes behind one listening port (node:cluster). regshim is stateless
// (the registry holds the truth; each worker's digest map is only a cache), so workers share
// nothing but the port: the primary accepts connections and hands them out in turn, and
// otherwise only supervises. Measured in docs/performance.md.
import cluster, { type Worker } from 'node:cluster';
import type { Registry } from 'prom-client';
import type { Logger } from './observability/log.js';

/** How long the primary waits for its workers to drain (their grace is 10 s) before it kills them. */
const KILL_AFTER_MS = 15_000;
/** A worker that dies this soon after the last restart is not restarted again at once. */
const RESTART_BACKOFF_MS = 1_000;
const COLLECT_TIMEOUT_MS = 2_000;

type Message =
  | { type: 'regshim:collect'; id: number }
  | { type: 'regshim:collected'; id: number; text: string }
  | { type: 'regshim:report'; id: number }
  | { type: 'regshim:reported'; id: number; json: unknown };

/** Is this process a worker forked by superviseWorkers()? */
export function isWorker(): boolean {
  return cluster.isWorker;
}

/**
 * Runs `count` workers and keeps them running: a worker that dies is replaced, unless it
 * died before it ever listened (a bad port, say), which stops everything with exit code 1.
 * SIGTERM or SIGINT is passed on to every worker, which drains its requests and exits; the
 * primary exits 0 once all have exited 0. SIGHUP (read the htpasswd file again) is passed
 * on when asked for; otherwise it keeps its default, which ends the process.
 */
export function superviseWorkers(count: number, log: Logger, options: { forwardSighup?: boolean } = {}): Promise<void> {
  let stopping = false;
  let lastRestart = 0;
  const listening = new WeakSet<Worker>();

  const fork = (): Worker => {
    const worker = cluster.fork();
    worker.once('listening', () => listening.add(worker));
    worker.on('message', (msg: Message) => {
      if (msg?.type === 'regshim:collect') {
        void collect().then(
          (text) => worker.send({ type: 'regshim:collected', id: msg.id, text } satisfies Message),
          (err: Error) => worker.send({ type: 'regshim:collected', id: msg.id, text: `# metrics of the workers could not be collected: ${err.message}\n` } satisfies Message),
        );
      }
    });
    return worker;
  };

  return new Promise<void>((resolve) => {
    let failed = false;
    const finishIfDone = () => {
      if (Object.keys(cluster.workers ?? {}).length > 0) return;
      process.exitCode = failed ? 1 : 0;
      resolve();
    };
    const stop = (signal: string, failure = false) => {
      failed ||= failure;
      if (stopping) return;
      stopping = true;
      log.info({ signal, workers: count }, 'shutting down');
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
      setTimeout(() => {
        for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
      }, KILL_AFTER_MS).unref();
      finishIfDone();
    };
    cluster.on('exit', (worker, code, signal) => {
      if (stopping) {
        if (code !== 0) failed = true;
        return finishIfDone();
      }
      if (!listening.has(worker)) {
        log.error({ worker: worker.id, code, signal }, 'a worker failed to start; stopping');
        return stop('worker start-up failure', true);
      }
      const wait = Math.max(0, lastRestart + RESTART_BACKOFF_MS - Date.now());
      log.error({ worker: worker.id, code, signal, restartInMs: wait }, 'a worker died; starting another');
      setTimeout(() => {
        lastRestart = Date.now();
        if (!stopping) fork();
      }, wait);
    });
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    if (options.forwardSighup) {
      // A worker still starting reads the file as it starts, and may not handle the signal yet.
      process.on('SIGHUP', () => {
        for (const worker of Object.values(cluster.workers ?? {})) if (worker && listening.has(worker)) worker.process.kill('SIGHUP');
      });
    }
    for (let i = 0; i < count; i++) fork();
    log.info({ workers: count }, 'started workers');
  });
}

let nextId = 0;
/** Asks every worker for its metrics and sums them (counters and histograms add up). */
async function collect(): Promise<string> {
  const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected());
  const reports = await Promise.all(workers.map((worker) => ask<unknown>(worker, 'regshim:report', 'regshim:reported', (m) => (m as { json: unknown }).json)));
  // Loaded here, not at start: the primary stays small (prom-client is some 7 MiB).
  const { AggregatorRegistry } = await import('prom-client');
  const merged = AggregatorRegistry.aggregate(reports.filter((r): r is object[] => Array.isArray(r)) as Parameters<typeof import('prom-client').AggregatorRegistry.aggregate>[0]);
  return merged.metrics();
}

/** One request-reply over the IPC channel, to a worker or (from a worker) to the primary. */
function ask<T>(peer: Worker | NodeJS.Process, type: 'regshim:report' | 'regshim:collect', reply: string, pick: (m: Message) => T): Promise<T | undefined> {
  const id = ++nextId;
  return new Promise<T | undefined>((resolve) => {
    const onMessage = (msg: Message) => {
      if (msg?.type !== reply || msg.id !== id) return;
      done(pick(msg));
    };
    const timer = setTimeout(() => done(undefined), COLLECT_TIMEOUT_MS);
    const done = (value: T | undefined) => {
      clearTimeout(timer);
      peer.off('message', onMessage);
      resolve(value);
    };
    peer.on('message', onMessage);
    (peer as { send?(message: Message): unknown }).send?.({ type, id });
  });
}

/**
 * In a worker: /metrics answers for all workers. The worker reports its own registry when
 * the primary asks, and collect() asks the primary for the sum over every worker.
 */
export function workerMetrics(): { attach(registry: Registry): void; collect(): Promise<string> } {
  return {
    attach(registry) {
      process.on('message', (msg: Message) => {
        if (msg?.type !== 'regshim:report') return;
        void registry.getMetricsAsJSON().then((json) => process.send?.({ type: 'regshim:reported', id: msg.id, json } satisfies Message));
      });
    },
    async collect() {
      const text = await ask<string>(process, 'regshim:collect', 'regshim:collected', (m) => (m as { text: string }).text);
      if (text === undefined) throw new Error('the primary process did not answer with the metrics of the workers');
      return text;
    },
  };
}
