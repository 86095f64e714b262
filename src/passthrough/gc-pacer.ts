// Streaming a blob allocates a 64 KiB ArrayBuffer for every socket read. V8 collects them
// only once external memory has grown about 64 MiB past its level at the last GC, and Node
// 24 lets them pile up further, so a busy proxy carries ~100 MiB of dead buffers (measured:
// 173-207 MiB peak RSS for a 1 GiB transfer). The pacer looks at ArrayBuffer memory 20
// times a second and asks for a young-generation collection past a threshold. It trades
// download throughput for memory (README, Performance): a major GC would cost far more,
// since it hands pages back to the OS that the next reads fault in again.
import v8 from 'node:v8';
import vm from 'node:vm';

export interface GcPacer {
  /** Collections asked for so far. */
  readonly collections: number;
  stop(): void;
}

type Gc = (options: { type: 'major' | 'minor'; execution: 'sync' | 'async' }) => void;

export function startGcPacer(thresholdBytes: number, intervalMs = 50): GcPacer | undefined {
  const gc = exposeGc();
  if (!gc) return undefined;
  let collections = 0;
  const timer = setInterval(() => {
    if (process.memoryUsage().arrayBuffers > thresholdBytes) {
      collections++;
      gc({ type: 'minor', execution: 'async' });
    }
  }, intervalMs);
  timer.unref();
  return {
    get collections() {
      return collections;
    },
    stop: () => clearInterval(timer),
  };
}

/** V8's gc(), without asking users to start Node with --expose-gc. */
function exposeGc(): Gc | undefined {
  const existing = (globalThis as { gc?: Gc }).gc;
  if (existing) return existing;
  try {
    v8.setFlagsFromString('--expose-gc');
    return vm.runInNewContext('gc') as Gc;
  } catch {
    return undefined;
  }
}
