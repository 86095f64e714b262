// Like go-containerregistry's depcheck_test.go: the architecture's boundaries, checked.
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const src = join(import.meta.dirname, '..', '..', 'src');

function importsOf(file: string, options: { types: boolean } = { types: true }): string[] {
  const text = readFileSync(join(src, file), 'utf8');
  const pattern = options.types ? /^\s*import\s[^;]*?from\s+'([^']+)'/gm : /^\s*import\s(?!type\s)[^;]*?from\s+'([^']+)'/gm;
  return [...text.matchAll(pattern)].map((m) => m[1] as string);
}

/** Imports that load code at run time: `import type` erases to nothing. */
function runtimeImportsOf(file: string): string[] {
  const text = readFileSync(join(src, file), 'utf8');
  return [...text.matchAll(/^\s*import\s(?!type\s)[^;]*?from\s+'([^']+)'/gm)].map((m) => m[1] as string);
}

function filesUnder(dir: string): string[] {
  return readdirSync(join(src, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => relative(src, join(src, dir, f)));
}

describe('module boundaries', () => {
  it('the conversions are pure: convert, detect, go-json and every stored form (cache/forms/) import nothing that does I/O', () => {
    const allowed = /^(node:crypto|(\.\.\/)+registry\/(media-types|routes)\.js|(\.|\.\.)\/(detect|go-json|convert)\.js|\.\/forms\/[a-z-]+\.js|\.\/(made-index|image-form|stored-forms|form-choice)\.js)$/;
    const files = ['cache/convert.ts', 'cache/detect.ts', 'cache/go-json.ts', ...filesUnder('cache/forms')];
    expect(files).toContain('cache/forms/stored-forms.ts');
    for (const file of files) {
      // Type-only imports vanish at run time.
      expect(importsOf(file, { types: false }).filter((i) => !allowed.test(i)), file).toEqual([]);
    }
  });

  it('registry/ (the protocol) knows nothing of cache/ or passthrough/', () => {
    for (const file of filesUnder('registry')) {
      expect(importsOf(file).filter((i) => /cache\/|passthrough\//.test(i)), file).toEqual([]);
    }
  });

  it('passthrough/ knows nothing of cache/', () => {
    for (const file of filesUnder('passthrough')) {
      expect(importsOf(file).filter((i) => /cache\//.test(i)), file).toEqual([]);
    }
  });

  it('upstream credentials live in registry/auth/: only it runs programs (credential helpers)', () => {
    for (const file of filesUnder('.').filter((f) => !f.startsWith('registry/auth/'))) {
      expect(importsOf(file).filter((i) => i === 'node:child_process'), file).toEqual([]);
    }
    for (const file of filesUnder('registry/auth')) {
      expect(importsOf(file).filter((i) => /cache\/|passthrough\/|access\//.test(i)), file).toEqual([]);
    }
  });

  it("inspect's and doctor's facts and rendering are pure: no network, no files, no processes", () => {
    const io = /^(undici|node:(net|tls|http|https|fs|fs\/promises|child_process))$|\/(upstream|client|fetch|gather|probes|run)\.js$/;
    const pure = ['inspect/facts.ts', 'inspect/forms.ts', 'inspect/records.ts', 'inspect/reference.ts', 'inspect/render.ts', 'doctor/facts.ts', 'doctor/render.ts', 'doctor/small-cache.ts', 'report/text.ts'];
    for (const file of pure) {
      expect(runtimeImportsOf(file).filter((i) => io.test(i)), file).toEqual([]);
    }
  });

  it('the pretty printer is loaded only when chosen: no module imports it statically', () => {
    for (const file of filesUnder('.')) {
      expect(importsOf(file).filter((i) => /pretty/.test(i)), file).toEqual(file === 'observability/pretty.ts' ? ['pino-pretty'] : []);
    }
  });

  it('only cli.ts reads process.env or the file system for configuration', () => {
    for (const file of filesUnder('.').filter((f) => f !== 'cli.ts')) {
      expect(readFileSync(join(src, file), 'utf8'), file).not.toMatch(/process\.env/);
    }
  });
});
