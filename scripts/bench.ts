// `npm run bench`: regshim against its two anchors, nginx and Go's httputil.ReverseProxy,
// and against the registry itself, all on loopback, interleaved so that machine noise
// spreads evenly. Figures: one large stream each way, eight concurrent streams each way,
// CPU seconds per GB moved and peak RSS of each proxy, small requests (rate at 32
// connections, latency at one), and the cache conversion in-process. Prints Markdown on
// stdout and writes bench/results.json. `npm run bench -- --quick` is a check in under a
// minute; it writes bench/results-quick.json instead.
//
// Flags: --quick; --variant NAME=ARGS (repeatable) adds a regshim with extra flags, e.g.
// --variant w1='--workers 1'; ARGS starting with @PATH runs the bin at PATH instead (an
// A/B against another build: --variant old='@/tmp/old/bin/regshim.js'). Env: BENCH_RUNS, BENCH_SIZE_MIB, BENCH_STREAMS,
// BENCH_STREAM_MIB, BENCH_SMALL_SECONDS.
import { mkdtempSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { benchConvert } from './bench/convert.ts';
import { type Proc, cleanup, exitedLogs, freePorts, groupCpuSeconds, groupPeakRssMiB, progress, setTmpDir, wasInterrupted, waitReady } from './bench/procs.ts';
import { type Figures, type Results, render, writeJson } from './bench/report.ts';
import { buildGo, ensureTools, startGoProxy, startNginx, startRegistry, startRegshim } from './bench/servers.ts';
import { type Fixture, load, setupFixture, smallCases } from './bench/small.ts';
import { fmt, mbps } from './bench/stats.ts';
import { agent, download, dropBlob, makeBlob, parallel, upload } from './bench/transfer.ts';

const { values: flags } = parseArgs({ options: { quick: { type: 'boolean', default: false }, variant: { type: 'string', multiple: true, default: [] } } });
const QUICK = flags.quick;

function setting(name: string, full: number, quick: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return QUICK ? quick : full;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return n;
}
const RUNS = setting('BENCH_RUNS', 3, 1);
const SIZE_MIB = setting('BENCH_SIZE_MIB', 1024, 128);
const STREAMS = setting('BENCH_STREAMS', 8, 8);
const STREAM_MIB = setting('BENCH_STREAM_MIB', 128, 16);
const SMALL_SECONDS = setting('BENCH_SMALL_SECONDS', 2, 1);

async function main(): Promise<void> {
  if (Number(process.versions.node.split('.')[0]) < 24) throw new Error(`run with Node 24 (npm run bench), not ${process.version}`);
  const loadAvg = { start: os.loadavg(), end: [] as number[] };
  ensureTools();
  progress('conversion in-process');
  const convert = await benchConvert([10, 1000, 10_000], QUICK ? 5 : 20);

  const tmpDir = mkdtempSync(path.join(os.tmpdir(), 'regshim-bench-'));
  setTmpDir(tmpDir);
  // nginx started as root runs its workers as nobody: they must reach their temp paths.
  chmodSync(tmpDir, 0o711);
  const goProxy = buildGo(tmpDir, 'goproxy');
  const goLoad = buildGo(tmpDir, 'goload');

  const variants = flags.variant.map((v) => {
    const eq = v.indexOf('=');
    if (eq < 1) throw new Error(`--variant ${v}: write NAME=ARGS, e.g. w1='--workers 1'`);
    const args = v.slice(eq + 1).split(/\s+/).filter(Boolean);
    const bin = args[0]?.startsWith('@') ? args.shift()!.slice(1) : undefined;
    return { name: v.slice(0, eq), args, bin };
  });
  const shimNames = ['regshim', ...variants.map((v) => v.name)];
  const paths = ['direct', 'nginx', 'go', ...shimNames];
  const ports = await freePorts(paths.length + 1);
  const port = Object.fromEntries(paths.map((p, i) => [p, ports[i]!])) as Record<string, number>;
  const coldPort = ports[paths.length]!;
  const base = Object.fromEntries(paths.map((p) => [p, `http://127.0.0.1:${port[p]}`])) as Record<string, string>;
  const coldBase = `http://127.0.0.1:${coldPort}`;

  const registry = startRegistry(tmpDir, port.direct!);
  await registry.ready;
  const procs: Record<string, Proc> = {
    nginx: startNginx(tmpDir, port.nginx!, port.direct!),
    go: startGoProxy(tmpDir, goProxy, port.go!, port.direct!),
    regshim: startRegshim('regshim', tmpDir, port.regshim!, port.direct!),
    ...Object.fromEntries(variants.map((v) => [v.name, startRegshim(v.name, tmpDir, port[v.name]!, port.direct!, v.args, v.bin)])),
  };
  const cold = startRegshim('regshim-cold', tmpDir, coldPort, port.direct!, ['--cache-max-bytes', '1']);
  await Promise.all([
    waitReady(procs.nginx!, `${base.nginx}/v2/`),
    waitReady(procs.go!, `${base.go}/v2/`),
    ...shimNames.map((s) => waitReady(procs[s]!, `${base[s]}/healthz`)),
    waitReady(cold, `${coldBase}/healthz`),
  ]);
  progress(`${paths.map((p) => `${p} :${port[p]}`).join(', ')}, regshim-cold :${coldPort}; temp dir ${tmpDir}`);

  // Warm-up, not measured: connections, JIT, first-use paths; downloads verified by digest.
  for (const p of paths) {
    const blob = makeBlob(Math.min(64, SIZE_MIB), `warm-${p}`);
    try {
      await upload(base[p]!, blob);
      await download(base[p]!, blob, true);
    } catch (err) {
      throw new Error(`warm-up through ${p}: ${(err as Error).message}`, { cause: err });
    }
    await dropBlob(base.direct!, registry.dataDir, blob);
  }
  const cases = smallCases(QUICK);
  let fixture: Fixture | undefined;
  /** Pushes the small-request fixture and warms its paths: after the first streams, so that those run in processes that have seen nothing else. */
  const prepareSmall = async (): Promise<Fixture> => {
    const f = await setupFixture(base.direct!, base.regshim!);
    for (const c of cases) {
      for (const p of paths) await load(goLoad, `${c.cold ? coldBase : base[p]}${c.path(p === 'direct' || p === 'nginx' || p === 'go' ? 'anchor' : 'regshim', f)}`, c.method, 4, 0.3);
    }
    return f;
  };
  let streamingRssMiB: Record<string, number[]> = {};

  const streams: Figures = {};
  const add = (figure: string, p: string, v: number) => ((streams[figure] ??= {})[p] ??= []).push(v);
  const small: Results['small'] = {};
  const cpu = (p: string) => (p === 'direct' ? NaN : groupCpuSeconds(procs[p]!.pid));
  const peakRss = (): Record<string, number[]> => Object.fromEntries(paths.filter((p) => p !== 'direct').map((p) => [p, groupPeakRssMiB(procs[p]!.pid)]));
  for (let run = 1; run <= RUNS; run++) {
    // Each round starts with another path, so none always runs first or last.
    const order = paths.map((_, i) => paths[(i + run - 1) % paths.length]!);
    for (const p of order) {
      const blob = makeBlob(SIZE_MIB, `run-${run}-${p}`);
      let c0 = cpu(p);
      const up = mbps(blob.size, await upload(base[p]!, blob));
      let c1 = cpu(p);
      add(`upload ${fmt(SIZE_MIB)} MiB, MB/s`, p, up);
      add('CPU-s/GB upload', p, (c1 - c0) / (blob.size / 1e9));
      c0 = c1;
      const down = mbps(blob.size, await download(base[p]!, blob));
      c1 = cpu(p);
      add(`download ${fmt(SIZE_MIB)} MiB, MB/s`, p, down);
      add('CPU-s/GB download', p, (c1 - c0) / (blob.size / 1e9));
      await dropBlob(base.direct!, registry.dataDir, blob);
      const blobs = Array.from({ length: STREAMS }, (_, i) => makeBlob(STREAM_MIB, `par-${run}-${p}-${i}`));
      const par = await parallel(base[p]!, blobs);
      const total = STREAMS * STREAM_MIB * 2 ** 20;
      add(`${STREAMS} x ${STREAM_MIB} MiB upload, MB/s`, p, mbps(total, par.upload));
      add(`${STREAMS} x ${STREAM_MIB} MiB download, MB/s`, p, mbps(total, par.download));
      for (const b of blobs) await dropBlob(base.direct!, registry.dataDir, b);
      progress(`run ${run}/${RUNS} ${p.padEnd(8)} PUT ${fmt(up)} GET ${fmt(down)} MB/s; ${STREAMS} streams PUT ${fmt(mbps(total, par.upload))} GET ${fmt(mbps(total, par.download))} MB/s`);
    }
    if (!fixture) {
      streamingRssMiB = peakRss();
      fixture = await prepareSmall();
    }
    for (const c of cases) {
      for (const p of order) {
        const side = p === 'direct' || p === 'nginx' || p === 'go' ? 'anchor' : 'regshim';
        if (c.cold && side === 'regshim' && p !== 'regshim') continue; // one cold regshim
        const url = `${c.cold && side === 'regshim' ? coldBase : base[p]}${c.path(side, fixture)}`;
        const many = await load(goLoad, url, c.method, 32, SMALL_SECONDS);
        const one = await load(goLoad, url, c.method, 1, SMALL_SECONDS);
        const slot = ((small[c.name] ??= {})[p] ??= { rps: [], p50ms: [], p99ms: [] });
        slot.rps.push(many.rps);
        slot.p50ms.push(one.p50ms);
        slot.p99ms.push(one.p99ms);
      }
      progress(`run ${run}/${RUNS} ${c.name}: ${paths.map((p) => `${p} ${fmt(small[c.name]?.[p]?.rps.at(-1) ?? NaN)}`).join(', ')} req/s`);
    }
  }
  const peakRssMiB = peakRss();
  peakRssMiB['regshim-cold'] = groupPeakRssMiB(cold.pid);
  loadAvg.end = os.loadavg();
  agent.destroy();
  await cleanup();

  const results: Results = {
    quick: QUICK,
    paths,
    settings: { runs: RUNS, sizeMiB: SIZE_MIB, streams: STREAMS, streamMiB: STREAM_MIB, smallSeconds: SMALL_SECONDS, variants },
    streams,
    small,
    convert,
    peakRssMiB,
    streamingRssMiB,
    load: loadAvg,
  };
  process.stdout.write(render(results));
  progress(`wrote ${writeJson(results)}`);
}

try {
  await main();
} catch (err) {
  // After Ctrl-C the requests in flight fail as their servers stop: not worth reporting.
  if (wasInterrupted()) await new Promise(() => {}); // the signal handler exits once cleanup is done
  process.stderr.write(`[bench] failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n${exitedLogs()}\n`);
  await cleanup();
  process.exitCode = 1;
}
