// The README's examples, run: every `sh` block is either run here (its `npx regshim` lines
// against a regshim started by this test in front of the real registry, distribution 2.8),
// run by the e2e test named below, or listed with the reason it cannot run here. A new
// block that is none of these fails. A `text` block right after a `sh` block is that
// command's output, as a terminal shows it, matched modulo digests. The configuration
// table is checked against `regshim serve --help`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthedUpstream, startAuthedUpstream } from '../support/auth-upstream.js';
import { pushBlobs, putManifest } from '../support/blobs.js';
import { Cleanup } from '../support/cleanup.js';
import { regshimCli, regshimOnTerminal } from '../support/cli.js';
import { type Fence, fences, readPage } from '../support/markdown.js';
import { type FixtureCache, fixtureCache } from '../support/oci-archive.js';
import { type Registry, startRegistry } from '../support/registry.js';
import { type ShimProcess, startShimProcess } from '../support/regshim.js';
import { type StrictGate, startStrictGate } from '../support/strict-gate.js';

/** Blocks this test does not run, by their first line, and why. */
const NOT_RUN_HERE = new Map([
  ['bash scripts/quickstart.sh', 'installs packages and holds ports 5000 and 5001 until Ctrl-C; startShimProcess starts regshim the same way'],
  ['REGSHIM_UPSTREAM=https://123456789012.dkr.ecr.eu-west-1.amazonaws.com bash scripts/quickstart.sh', 'an ECR registry, not reachable here'],
  ['bash scripts/test-all.sh', 'runs every test, this one among them'],
  ['docker buildx build \\', 'run by test/e2e/readme-buildx.test.ts, with BuildKit 0.25'],
]);

const readme = readPage('README.md');
const blocks = fences(readme);
const shBlocks = blocks.filter((b) => b.lang === 'sh');
const firstLine = (b: Fence) => b.body.split('\n')[0] ?? '';
const runnable = shBlocks.filter((b) => !NOT_RUN_HERE.has(firstLine(b)));

interface Example {
  command: string;
  exit: number;
  output: string | undefined;
}

/** `npx regshim ...   # exit 1` lines of a block, with the `text` block after it, if any. */
function examplesOf(block: Fence): Example[] {
  const next = blocks[blocks.indexOf(block) + 1] as Fence | undefined;
  const output = next?.lang === 'text' && next.followsPrevious ? next.body : undefined;
  const lines = block.body.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  if (output !== undefined && lines.length !== 1) throw new Error(`README line ${block.line}: an output block needs exactly one command before it`);
  return lines.map((line) => {
    const [command = '', comment = ''] = line.split(/\s+#\s*/, 2);
    return { command: command.trim(), exit: Number(/^exit (\d)$/.exec(comment)?.[1] ?? 0), output };
  });
}

const cleanup = new Cleanup();
let registry: Registry;
let quay: StrictGate;
let privateUpstream: AuthedUpstream;
let shim: ShimProcess;
let cache: FixtureCache;

beforeAll(async () => {
  registry = await cleanup.track(startRegistry());
  quay = await cleanup.track(startStrictGate(registry.url, 'quay'));
  const dir = await cleanup.tempDir('regshim-readme-');
  privateUpstream = await cleanup.track(startAuthedUpstream('basic', dir));
  shim = await cleanup.track(startShimProcess(registry.url));
  cache = await fixtureCache('index');
  await pushBlobs(shim.url, 'team/app', cache.blobs.values());
  expect((await putManifest(shim.url, 'team/app', 'cache', cache.bytes, cache.mediaType)).status).toBe(201);
});
afterAll(() => cleanup.run());

/** The README's example names and what stands for each here; longest first, so URLs go before hosts. */
function hosts(): [string, string][] {
  return [
    ['http://localhost:5000', shim.url],
    ['https://registry.example.com', registry.url],
    ['https://quay.example.com', quay.url],
    ['https://private.example.com', privateUpstream.registry.url],
    ['localhost:5000', shim.host],
  ];
}

const toHere = (text: string) => hosts().reduce((t, [example, here]) => t.split(example).join(here), text);
const toExample = (text: string) => hosts().reduce((t, [example, here]) => t.split(here).join(example), text);
const withoutDigests = (text: string) => text.replace(/sha256:[0-9a-f]{8,64}…?/g, 'sha256:…');

/**
 * Does `actual` show every line of `expected`, in order? An expected line `…` stands for
 * any lines; one ending in `…` for any line that starts with what comes before it.
 */
function matchesOutput(expected: string[], actual: string[]): boolean {
  if (expected.length === 0) return actual.length === 0;
  const [line = '', ...rest] = expected;
  if (line === '…') return actual.some((_, i) => matchesOutput(rest, actual.slice(i))) || matchesOutput(rest, []);
  const first = actual[0];
  if (first === undefined) return false;
  const fits = line.endsWith('…') ? first.startsWith(line.slice(0, -1)) : first === line;
  return fits && matchesOutput(rest, actual.slice(1));
}

/** Runs an `npx regshim` line on a terminal, as a person would, so reports come as text. */
async function runOnTerminal(command: string) {
  const words = toHere(command).split(/\s+/);
  if (words.slice(0, 2).join(' ') !== 'npx regshim') throw new Error(`not an \`npx regshim\` line: ${command}`);
  const r = await regshimOnTerminal(words.slice(2));
  return { code: r.code, output: r.stdout + r.stderr };
}

/** What a block needs done first: the half-deleted cache is one with a layer blob gone. */
async function arrange(command: string): Promise<void> {
  if (!command.includes('--check-blobs')) return;
  const layer = [...cache.blobs.keys()][0];
  const r = await fetch(`${registry.url}/v2/team/app/blobs/${layer}`, { method: 'DELETE' });
  expect([202, 404]).toContain(r.status);
}

describe('README examples', () => {
  it('every sh block is run here, run by the e2e test, or listed with its reason', () => {
    const listed = new Set(shBlocks.map(firstLine));
    expect([...NOT_RUN_HERE.keys()].filter((first) => !listed.has(first))).toEqual([]);
    for (const block of runnable) for (const { command } of examplesOf(block)) expect(command, `README line ${block.line}`).toMatch(/^npx regshim /);
    expect(runnable.length).toBeGreaterThanOrEqual(6);
  });

  it.each(runnable.map((b) => [b.line, b] as const))('the block at README line %i: exit status and output', async (_line, block) => {
    for (const example of examplesOf(block)) {
      await arrange(example.command);
      const r = await runOnTerminal(example.command);
      expect({ command: example.command, code: r.code }, r.output).toEqual({ command: example.command, code: example.exit });
      if (example.output === undefined) continue;
      const actual = withoutDigests(toExample(r.output)).trimEnd().split('\n');
      const expected = withoutDigests(example.output).split('\n');
      expect(matchesOutput(expected, actual), `README shows:\n${example.output}\n\nregshim printed:\n${toExample(r.output)}`).toBe(true);
    }
  });

  it('the configuration table names every flag of `regshim serve`, with its environment variable, and no other flag', async () => {
    const help = await regshimCli(['serve', '--help']);
    expect(help.code).toBe(0);
    // One entry per option; commander may wrap its description onto indented lines.
    const options = help.stdout.split(/\n(?= {2}--)/).filter((o) => o.trimStart().startsWith('--'));
    const envOf = new Map(options.map((o) => [/--[a-z-]+/.exec(o)?.[0] ?? '', /env:? (REGSHIM_[A-Z_]+)/.exec(o.replace(/\s+/g, ' '))?.[1]]));
    envOf.delete('--help');
    const start = readme.indexOf('## Configuration');
    const rows = readme.slice(start, readme.indexOf('\n## ', start + 1)).split('\n').filter((l) => l.startsWith('| `--'));
    const inTable = new Map<string, Set<string>>();
    for (const row of rows) {
      const [, flagCell = '', envCell = ''] = row.split(/(?<!\\)\|/); // `\|` is a pipe inside a cell
      const envs = new Set([...envCell.matchAll(/`([A-Z_]+)(=1)?`/g)].map((m) => `REGSHIM_${m[1] ?? ''}`));
      for (const m of flagCell.matchAll(/`(--[a-z-]+)/g)) inTable.set(m[1] ?? '', envs);
    }
    expect([...envOf.keys()].filter((f) => !inTable.has(f)).sort()).toEqual([]);
    expect([...inTable.keys()].filter((f) => !envOf.has(f)).sort()).toEqual([]);
    const wrongEnv = [...envOf].filter(([flag, env]) => env !== undefined && inTable.get(flag)?.has(env) !== true);
    expect(wrongEnv.map(([flag, env]) => `${flag}: ${env}`)).toEqual([]);
    expect(envOf.size).toBeGreaterThanOrEqual(30);
  });
});

describe('matchesOutput', () => {
  it('takes lines in order, `…` for any lines, a trailing `…` for the rest of a line', () => {
    expect(matchesOutput(['a', '…', 'd'], ['a', 'b', 'c', 'd'])).toBe(true);
    expect(matchesOutput(['a', 'b…'], ['a', 'bcd'])).toBe(true);
    expect(matchesOutput(['a', 'c'], ['a', 'b', 'c'])).toBe(false);
    expect(matchesOutput(['a', '…'], ['a'])).toBe(true);
    expect(matchesOutput(['a'], ['a', 'b'])).toBe(false);
  });
});
