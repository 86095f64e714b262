// The most memory (resident set) regshim can hold with its flags: a sum of its configured
// bounds, for sizing a container's limit (docs/operations.md, Memory sizing). The constants
// were measured on Node 24 started by the bin (1 MiB semi-space, glibc trim threshold 64
// MiB); test/adversarial/memory-budget.test.ts drives a process to every bound at once and
// holds its peak under the sum.
import type { Config } from './config.js';
import { BUFFER_SIZE, IN_FLIGHT, POOL_KEEP } from './passthrough/relay.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A fresh process with default flags, after /healthz and /metrics: 80-82 MiB measured. */
const START_UP = 84 * MiB;
/**
 * What a process grows by under mixed load whatever its bounds: code compiled, objects the
 * 1 MiB young generation promotes. 300 rounds of small requests of every kind: 23-36 MiB.
 */
const HEAP_GROWTH = 40 * MiB;
/** Dead buffers not yet freed: V8 collects once external memory has grown this much (its soft limit). */
const EXTERNAL_GARBAGE = 64 * MiB;
/**
 * Resident bytes per byte the digest map counts, filling a map to its bound: indexes of 100
 * KB and more 1.05, pointer-only entries 1.57, indexes of 1-4 KB 2.1-2.3 (each pins the 8 KiB
 * buffer pool slab its bytes were cut from, and its two entries cost more than the 256 bytes
 * counted for each).
 */
const DIGEST_MAP_PER_COUNTED_BYTE = 2.5;
/**
 * The texts and parsed documents of manifests read since the last full collection, per byte
 * of --max-manifest-bytes-in-flight: V8's old generation grows past them before it collects.
 * A wave of slow 4 MB PUTs at a 32 MiB bound added up to 145 MiB to a process whose map was
 * full: 32 live, 64 of dead buffers, 49 of dead heap.
 */
const HEAP_GARBAGE_PER_IN_FLIGHT_BYTE = 1.5;
/** A client connection besides its head (up to --max-header-bytes): socket, parser, request objects. 16-26 KiB measured with 15 KiB heads. */
const PER_CLIENT_CONNECTION = 16 * KiB;
/** An upstream connection of the streaming pool: its reused 64 KiB read buffer, socket, parser (estimated). */
const PER_STREAMING_CONNECTION = 96 * KiB;
/** An upstream connection of regshim's own calls (undici): socket, parser, buffers (estimated). */
const PER_OWN_CALL_CONNECTION = 64 * KiB;
/** The primary of --workers, which only supervises: 74-76 MiB measured. */
const WORKERS_PRIMARY = 80 * MiB;
/** A thread that checks --auth-htpasswd passwords (--auth-check-threads): 13-20 MiB measured with bcryptjs loaded. */
const PER_PASSWORD_CHECK_THREAD = 24 * MiB;

export interface MemoryTerm {
  readonly name: string;
  readonly bytes: number;
  /** How the figure is made: the flags it scales with, or that it was measured. */
  readonly basis: string;
}

export interface MemoryBudget {
  /** The terms of one serving process. */
  readonly terms: readonly MemoryTerm[];
  /** Their sum: the most one serving process holds. */
  readonly perProcess: number;
  readonly workers: number;
  /** Every process together: with --workers over 1, the primary and each worker. */
  readonly total: number;
}

export function memoryBudget(config: Config): MemoryBudget {
  const terms: MemoryTerm[] = [
    { name: 'start-up', bytes: START_UP, basis: 'a fresh process, measured' },
    { name: 'heap growth under load', bytes: HEAP_GROWTH, basis: 'compiled code, promoted objects, measured' },
    { name: 'digest map', bytes: config.cacheMaxBytes * DIGEST_MAP_PER_COUNTED_BYTE, basis: `--cache-max-bytes x ${DIGEST_MAP_PER_COUNTED_BYTE}` },
    { name: 'manifests in flight', bytes: config.maxManifestBytesInFlight, basis: '--max-manifest-bytes-in-flight (four bytes counted per body byte)' },
    { name: 'manifest garbage on the heap', bytes: config.maxManifestBytesInFlight * HEAP_GARBAGE_PER_IN_FLIGHT_BYTE, basis: `--max-manifest-bytes-in-flight x ${HEAP_GARBAGE_PER_IN_FLIGHT_BYTE}` },
    { name: 'dead buffers', bytes: EXTERNAL_GARBAGE, basis: "V8's external memory soft limit" },
    {
      name: 'client connections',
      bytes: config.maxClientConnections * (config.maxHeaderBytes + PER_CLIENT_CONNECTION),
      basis: `--max-client-connections x (--max-header-bytes + ${PER_CLIENT_CONNECTION / KiB} KiB)`,
    },
    relayTerm(config),
    {
      name: 'upstream connections',
      bytes: config.upstreamConnections * (PER_STREAMING_CONNECTION + PER_OWN_CALL_CONNECTION),
      basis: `--upstream-connections x (${PER_STREAMING_CONNECTION / KiB} + ${PER_OWN_CALL_CONNECTION / KiB} KiB), two pools`,
    },
    {
      name: 'password checks',
      bytes: config.access.htpasswd ? config.access.passwordChecks.threads * PER_PASSWORD_CHECK_THREAD : 0,
      basis: config.access.htpasswd ? `--auth-check-threads x ${PER_PASSWORD_CHECK_THREAD / MiB} MiB` : 'none without --auth-htpasswd',
    },
  ];
  const perProcess = terms.reduce((sum, t) => sum + Math.ceil(t.bytes), 0);
  const total = config.workers > 1 ? WORKERS_PRIMARY + config.workers * perProcess : perProcess;
  return { terms, perProcess, workers: config.workers, total };
}

/** GETs from a plain-http upstream are relayed through pooled buffers (src/passthrough/relay.ts). */
function relayTerm(config: Config): MemoryTerm {
  if (config.upstream.protocol !== 'http:') return { name: 'blob relay buffers', bytes: 0, basis: 'none: GETs from an https upstream are not relayed' };
  return {
    name: 'blob relay buffers',
    bytes: (config.upstreamConnections * IN_FLIGHT + POOL_KEEP) * BUFFER_SIZE,
    basis: `(--upstream-connections x ${IN_FLIGHT} in flight + ${POOL_KEEP} pooled) x ${BUFFER_SIZE / KiB} KiB`,
  };
}

/** The budget as an operator reads it: a term a line, then the sums. */
export function formatMemoryBudget(budget: MemoryBudget): string {
  const mib = (bytes: number) => `${(bytes / MiB).toFixed(1).padStart(7)} MiB`;
  const width = Math.max(...budget.terms.map((t) => t.name.length));
  const line = (name: string, bytes: number, basis: string) => `${name.padEnd(width)}  ${mib(bytes)}  ${basis}`.trimEnd();
  const lines = budget.terms.map((t) => line(t.name, t.bytes, t.basis));
  lines.push(line('per process', budget.perProcess, ''));
  if (budget.workers > 1) lines.push(line('all processes', budget.total, `the primary (${WORKERS_PRIMARY / MiB} MiB) and ${budget.workers} workers`));
  lines.push(line('memory limit', budget.total, `${Math.ceil(budget.total / MiB)}Mi`));
  return `${lines.join('\n')}\n`;
}
