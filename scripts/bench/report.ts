// The Markdown report and bench/results.json.
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ConvertResult } from './convert.ts';
import { NGINX_SUMMARY, ROOT } from './servers.ts';
import { cell, fmt, median } from './stats.ts';

export const ANCHORS = ['nginx', 'go'] as const;

/** figure -> path -> values of each run. */
export type Figures = Record<string, Record<string, number[]>>;

export interface Results {
  quick: boolean;
  paths: string[];
  settings: Record<string, unknown>;
  streams: Figures;
  /** case -> path -> { rps, p50ms, p99ms } runs. */
  small: Record<string, Record<string, { rps: number[]; p50ms: number[]; p99ms: number[] }>>;
  convert: ConvertResult[];
  /** Peak RSS over the whole run, small-request bursts included. */
  peakRssMiB: Record<string, number[]>;
  /** Peak RSS after the first round of streams, in processes that had done nothing else but a warm-up. */
  streamingRssMiB: Record<string, number[]>;
  load: { start: number[]; end: number[] };
}

/** higher: MB/s or req/s, ratio to the faster anchor; lower: CPU-s/GB, ratio to the thriftier. */
function ratio(byPath: Record<string, number[]>, p: string, higherIsBetter: boolean): number {
  const anchors = ANCHORS.map((a) => median(byPath[a] ?? [])).filter(Number.isFinite);
  const best = higherIsBetter ? Math.max(...anchors) : Math.min(...anchors);
  return median(byPath[p] ?? []) / best;
}

export function render(r: Results): string {
  const shims = r.paths.filter((p) => p !== 'direct' && !(ANCHORS as readonly string[]).includes(p));
  const lines: string[] = [];
  lines.push(`## Streams (median (min-max) of ${String(r.settings.runs)} interleaved runs)`, '');
  lines.push(`| figure | ${r.paths.join(' | ')} | ${shims.map((s) => `${s} vs best anchor`).join(' | ')} |`);
  lines.push(`| --- | ${r.paths.map(() => '---:').join(' | ')} | ${shims.map(() => '---:').join(' | ')} |`);
  for (const [figure, byPath] of Object.entries(r.streams)) {
    const higher = !figure.startsWith('CPU');
    const digits = higher ? 0 : 2;
    lines.push(`| ${figure} | ${r.paths.map((p) => cell(byPath[p] ?? [], digits)).join(' | ')} | ${shims.map((s) => `${fmt(ratio(byPath, s, higher), 2)}x`).join(' | ')} |`);
  }
  const rssRows: [string, Record<string, number[]>][] = [['while streaming (first round, fresh processes)', r.streamingRssMiB], ['over the whole run', r.peakRssMiB]];
  for (const [when, rss] of rssRows) {
    lines.push(`| peak RSS MiB ${when}, largest process | ${r.paths.map((p) => fmt(Math.max(...(rss[p] ?? [NaN])), 0)).join(' | ')} | ${shims.map(() => '').join(' | ')} |`);
    lines.push(`| peak RSS MiB ${when}, all processes | ${r.paths.map((p) => fmt((rss[p] ?? []).reduce((a, b) => a + b, 0), 0)).join(' | ')} | ${shims.map(() => '').join(' | ')} |`);
  }
  lines.push('');
  lines.push('## Small requests (req/s at 32 connections; p50/p99 ms at one connection)', '');
  const sp = r.paths;
  lines.push(`| request | ${sp.map((p) => `${p} req/s`).join(' | ')} | ${shims.map((s) => `${s} vs best`).join(' | ')} | direct p50 | ${shims.map((s) => `${s} +p50`).join(' | ')} | direct p99 | ${shims.map((s) => `${s} +p99`).join(' | ')} |`);
  lines.push(`| --- | ${[...sp, ...shims, 'x', ...shims, 'x', ...shims].map(() => '---:').join(' | ')} |`);
  for (const [name, byPath] of Object.entries(r.small)) {
    const rps = Object.fromEntries(Object.entries(byPath).map(([p, v]) => [p, v.rps]));
    const d50 = median(byPath.direct?.p50ms ?? []);
    const d99 = median(byPath.direct?.p99ms ?? []);
    lines.push(`| ${name} | ${sp.map((p) => cell(rps[p] ?? [])).join(' | ')} | ${shims.map((s) => `${fmt(ratio(rps, s, true), 2)}x`).join(' | ')} | ${fmt(d50, 2)} | ${shims.map((s) => `+${fmt(median(byPath[s]?.p50ms ?? []) - d50, 2)}`).join(' | ')} | ${fmt(d99, 2)} | ${shims.map((s) => `+${fmt(median(byPath[s]?.p99ms ?? []) - d99, 2)}`).join(' | ')} |`);
  }
  lines.push('');
  lines.push('## Conversion in-process (median ms)', '');
  lines.push('| descriptors | index bytes | convert ms | restore ms |', '| ---: | ---: | ---: | ---: |');
  for (const c of r.convert) lines.push(`| ${fmt(c.descriptors)} | ${fmt(c.indexBytes)} | ${fmt(median(c.convertMs), 2)} | ${fmt(median(c.restoreMs), 2)} |`);
  lines.push('');
  lines.push(`MB = 10^6 bytes. Node ${process.version}, ${os.cpus().length} CPUs, Linux ${os.release()}; load average ${r.load.start.map((l) => l.toFixed(2)).join(' ')} at start, ${r.load.end.map((l) => l.toFixed(2)).join(' ')} at the end. nginx: ${NGINX_SUMMARY}. ` +
    'Cold map: a regshim with --cache-max-bytes 1 (its anchors are the same requests as warm). Anchors serve a cache as stored (the converted manifest); regshim restores the index.');
  return `${lines.join('\n')}\n`;
}

/** A full run's figures go to results.json, the table in docs/performance.md; a --quick check's beside it, so that it never replaces them. */
export function writeJson(r: Results): string {
  const file = path.join(ROOT, 'bench', r.quick ? 'results-quick.json' : 'results.json');
  const json = {
    date: new Date().toISOString(),
    machine: { cores: os.cpus().length, cpu: os.cpus()[0]?.model, kernel: os.release(), node: process.version, memoryMiB: Math.round(os.totalmem() / 2 ** 20), loadAverage: r.load },
    ...r,
    units: { streams: 'MB/s (10^6 bytes), CPU seconds per 10^9 bytes', small: 'req/s, ms', convert: 'ms', peakRssMiB: 'MiB per process (VmHWM)', streamingRssMiB: 'MiB per process (VmHWM)' },
  };
  writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
  return file;
}
