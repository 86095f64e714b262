// What every fuzz test runs against: an in-process regshim in front of the real registry
// (distribution 2.8), with an instrumented wire between them, so each answer can be told
// apart: a 5xx the registry made passes through; a 5xx regshim made is a finding.
import { createHash } from 'node:crypto';
import net from 'node:net';
import fc from 'fast-check';
import { Client, Pool } from 'undici';
import { Cleanup } from '../support/cleanup.js';
import { type CountingProxy, type Recorded, startCountingProxy } from '../support/counting-proxy.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { type RunningShim, startShim } from '../support/regshim.js';

export const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** FUZZ_SCALE scales every property's number of runs (1: as written). */
export const SCALE = Number(process.env.FUZZ_SCALE ?? '1');
/** One fixed seed, so a failure replays; FUZZ_SEED picks another. */
export const SEED = Number(process.env.FUZZ_SEED ?? '20261201');

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The upstream answers seen while this request was answered (other requests' too, when several run at once). */
  upstream: Recorded[];
}

export interface Harness {
  registry: Registry;
  wire: CountingProxy;
  shim: RunningShim;
  /** Errors that escaped: uncaught exceptions and unhandled rejections in this process. */
  escaped: unknown[];
  send(method: string, path: string, headers?: Record<string, string>, body?: Buffer): Promise<Answer>;
  /** Raw bytes on a fresh connection; resolves everything answered before close (or 3 s of silence). */
  raw(bytes: string): Promise<{ text: string; upstream: Recorded[] }>;
  stop(): Promise<void>;
}

export async function startHarness(): Promise<Harness> {
  const cleanup = new Cleanup();
  const escaped: unknown[] = [];
  const onEscape = (err: unknown) => escaped.push(err);
  process.on('uncaughtException', onEscape);
  process.on('unhandledRejection', onEscape);
  try {
    const registry = await cleanup.track(startRegistry());
    const wire = await cleanup.track(startCountingProxy(registry.url));
    const shim = await cleanup.track(startShim(wire.url, { logLevel: 'warn' }));
    // A request unanswered for 5 s is a finding (a hang), not a stuck run.
    const pool = new Pool(shim.url, { connections: 16, pipelining: 1, headersTimeout: 5_000, bodyTimeout: 5_000 });
    const [host, port] = [shim.host.split(':')[0] ?? '127.0.0.1', Number(shim.host.split(':')[1])];
    const upstreamSince = (mark: number) => wire.requests.slice(mark);

    return {
      registry,
      wire,
      shim,
      escaped,
      async send(method, path, headers = {}, body) {
        const mark = wire.requests.length;
        // A connection of its own: a case that leaves its connection in a bad state must not
        // take the next case down with it.
        const client = new Client(shim.url, { headersTimeout: 5_000, bodyTimeout: 5_000 });
        try {
          const res = await client.request({ method: method as 'GET', path, headers, body: body ?? null });
          const bytes = Buffer.from(await res.body.arrayBuffer());
          return { status: res.statusCode, headers: res.headers, body: bytes, upstream: upstreamSince(mark) };
        } finally {
          void client.destroy().catch(() => undefined);
        }
      },
      raw(bytes) {
        const mark = wire.requests.length;
        return new Promise((resolve, reject) => {
          // write, not end: a half-closed client is one that left, and regshim drops its request.
          const socket = net.connect(port, host, () => socket.write(bytes, 'latin1'));
          const chunks: Buffer[] = [];
          socket.on('data', (d: Buffer) => chunks.push(d));
          socket.setTimeout(3_000, () => socket.destroy());
          socket.on('close', () => resolve({ text: Buffer.concat(chunks).toString('latin1'), upstream: upstreamSince(mark) }));
          socket.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? undefined : reject(err)));
        });
      },
      async stop() {
        await pool.close();
        process.off('uncaughtException', onEscape);
        process.off('unhandledRejection', onEscape);
        await cleanup.run();
      },
    };
  } catch (err) {
    process.off('uncaughtException', onEscape);
    process.off('unhandledRejection', onEscape);
    await cleanup.run();
    throw err;
  }
}

/**
 * Why an answer is a finding, or undefined. A 5xx is the registry's when the registry gave
 * that very answer (regshim passes its errors back unchanged); any other 5xx is regshim's own.
 */
export function ownServerError(status: number, body: Buffer, upstream: Recorded[]): string | undefined {
  if (status < 500) return undefined;
  if (upstream.some((r) => r.status === status && r.errorBody?.equals(body))) return undefined;
  return `regshim answered ${status} while the upstream answered ${upstream.length === 0 ? 'nothing' : upstream.map((r) => r.status).join(', ')}`;
}

export interface Finding {
  count: number;
  example: string;
}

/**
 * Runs `numRuns` cases with the fixed seed, `concurrency` at a time (the registry's disk,
 * not regshim, is what a case waits on), and collects every finding instead of stopping at
 * the first, grouped by what went wrong: one run reports every kind of failure. `run`
 * resolves a short description of what went wrong, or undefined.
 */
export async function explore<T>(opts: {
  arb: fc.Arbitrary<T>;
  numRuns: number;
  concurrency?: number;
  describe: (value: T) => string;
  run: (value: T, caseNo: number) => Promise<string | undefined>;
  group?: (value: T) => string;
  /** Stop generating after this long (the report says how many cases ran). */
  timeLimitMs?: number;
}): Promise<{ runs: number; findings: Map<string, Finding>; report: string }> {
  const concurrency = opts.concurrency ?? 1;
  const findings = new Map<string, Finding>();
  let runs = 0;
  const one = async (value: T): Promise<void> => {
    const caseNo = runs++;
    let problem: string | undefined;
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      // A case that hangs is a finding, and must not stall the run.
      const hang = new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve('no answer within 6 s'), 6_000);
      });
      problem = await Promise.race([opts.run(value, caseNo), hang]);
    } catch (err) {
      problem = `the client saw an error: ${(err as Error).message}`;
    } finally {
      clearTimeout(timer);
    }
    const seconds = (performance.now() - started) / 1000;
    if (problem === undefined && seconds > 4) problem = `answered only after ${seconds.toFixed(1)} s`;
    if (problem === undefined) return;
    // Grouped without numbers, and without the upstream answers of cases running at the same time.
    const key = `${opts.group?.(value) ?? ''} ${problem.replace(/ while the upstream answered [^:]*/, '').replace(/\d+/g, 'N').slice(0, 200)}`;
    const seen = findings.get(key);
    if (seen) seen.count++;
    else findings.set(key, { count: 1, example: `${problem}\n    case: ${opts.describe(value)}` });
  };
  await fc.assert(
    fc.asyncProperty(fc.array(opts.arb, { minLength: concurrency, maxLength: concurrency }), async (batch) => {
      await Promise.all(batch.map(one));
    }),
    {
      seed: SEED,
      numRuns: Math.max(1, Math.ceil((opts.numRuns * SCALE) / concurrency)),
      ...(opts.timeLimitMs ? { interruptAfterTimeLimit: opts.timeLimitMs, markInterruptAsFailure: false } : {}),
    },
  );
  const report = [...findings.values()].map((f) => `- ${f.count}x ${f.example}`).join('\n');
  return { runs, findings, report: report === '' ? '' : `seed ${SEED} (replay with FUZZ_SEED=${SEED}), ${runs} runs:\n${report}` };
}

/** The first bytes of a body, printable, for reports. */
export function preview(bytes: Buffer, max = 300): string {
  const text = bytes.subarray(0, max).toString('utf8').replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `${bytes.length} bytes, ${sha256(bytes)}: ${text}${bytes.length > max ? '…' : ''}`;
}
