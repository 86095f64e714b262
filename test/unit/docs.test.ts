// The README stays a short manual, and every relative link and #anchor in it and in
// docs/*.md leads somewhere.
import { existsSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';
import { documentationPages, headingAnchors, readPage, relativeLinks, repoRoot } from '../support/markdown.js';

const README_LIMIT_BYTES = 15_000;

describe('the README and docs/', () => {
  it(`README.md is at most ${README_LIMIT_BYTES} bytes`, () => {
    expect(Buffer.byteLength(readPage('README.md'))).toBeLessThanOrEqual(README_LIMIT_BYTES);
  });

  it('the README links every docs page, and every docs page links back', () => {
    const readmeTargets = new Set(relativeLinks(readPage('README.md')).map((l) => l.target.split('#')[0]));
    const pages = documentationPages().filter((p) => p !== 'README.md');
    expect(pages.filter((p) => !readmeTargets.has(p))).toEqual([]);
    expect(pages.filter((p) => !relativeLinks(readPage(p)).some((l) => l.target === '../README.md'))).toEqual([]);
  });

  it.each(documentationPages())('%s: every relative link and #anchor resolves', (page) => {
    const broken: string[] = [];
    for (const { target, line } of relativeLinks(readPage(page))) {
      const [path = '', anchor] = target.split('#');
      const file = path === '' ? page : normalize(join(dirname(page), path));
      const full = join(repoRoot, file);
      if (!existsSync(full)) broken.push(`${page}:${line} ${target}: no such file`);
      else if (anchor !== undefined && (!statSync(full).isFile() || !headingAnchors(readPage(file)).has(anchor))) {
        broken.push(`${page}:${line} ${target}: no heading #${anchor} in ${file}`);
      }
    }
    expect(broken).toEqual([]);
  });
});

describe('headingAnchors', () => {
  it('spells anchors as GitHub does', () => {
    const md = '# A\n## Security: who can do what\n## The run (load average 2-3.4)\n```\n# not a heading\n```\n## Twice\n## Twice\n';
    expect([...headingAnchors(md)]).toEqual(['a', 'security-who-can-do-what', 'the-run-load-average-2-34', 'twice', 'twice-1']);
  });
});
