// Reading the README and docs/*.md as the tests need them: fenced blocks, links, and the
// anchors GitHub gives headings. Pure.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export const repoRoot = join(import.meta.dirname, '..', '..');

/** README.md and every docs page, as paths relative to the repository. */
export function documentationPages(): string[] {
  const docs = readdirSync(join(repoRoot, 'docs')).filter((f) => f.endsWith('.md'));
  return ['README.md', ...docs.sort().map((f) => `docs/${f}`)];
}

export function readPage(page: string): string {
  return readFileSync(join(repoRoot, page), 'utf8');
}

export interface Fence {
  lang: string;
  body: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** Is the text between the previous fence's end and this fence blank? */
  followsPrevious: boolean;
}

/** The ``` blocks of a page, in order. */
export function fences(md: string): Fence[] {
  const out: Fence[] = [];
  const lines = md.split('\n');
  let open: { lang: string; line: number; body: string[]; followsPrevious: boolean } | undefined;
  let blankSinceFence = false;
  lines.forEach((text, i) => {
    if (open) {
      if (text.startsWith('```')) {
        out.push({ lang: open.lang, line: open.line, body: open.body.join('\n'), followsPrevious: open.followsPrevious });
        open = undefined;
        blankSinceFence = true;
      } else open.body.push(text);
    } else if (text.startsWith('```')) {
      open = { lang: text.slice(3).trim(), line: i + 1, body: [], followsPrevious: out.length > 0 && blankSinceFence };
    } else if (text.trim() !== '') blankSinceFence = false;
  });
  return out;
}

/** The page with its fenced blocks and inline code blanked, so neither is read as prose. */
function prose(md: string): string[] {
  let inFence = false;
  return md.split('\n').map((line) => {
    if (line.startsWith('```')) {
      inFence = !inFence;
      return '';
    }
    return inFence ? '' : line.replace(/`[^`]*`/g, '');
  });
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes, repeats numbered. */
export function headingAnchors(md: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  let inFence = false;
  for (const line of md.split('\n')) {
    if (line.startsWith('```')) inFence = !inFence;
    const m = !inFence && /^#{1,6} (.+)$/.exec(line);
    if (!m) continue;
    const base = (m[1] ?? '').trim().toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, '').replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

export interface Link {
  target: string;
  line: number;
}

/** Markdown links that stay in the repository (no scheme), outside code. */
export function relativeLinks(md: string): Link[] {
  return prose(md).flatMap((text, i) =>
    [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => ({ target: m[1] ?? '', line: i + 1 })).filter((l) => !/^[a-z]+:/i.test(l.target)),
  );
}
