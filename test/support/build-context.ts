// The build that the BuildKit e2e tests export and import: COPY steps, a RUN step and a
// second stage, so a mode=max cache holds six layers. FROM scratch, since no base image
// is reachable offline; the RUN step runs tini-static (Debian trixie's tini package). The
// same Dockerfile parses with BuildKit 0.8's frontend, so both versions build it.
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const STEPS = {
  tini: '[tools 1/4] COPY tini /tini',
  base: '[tools 2/4] COPY base.txt /base.txt',
  app: '[tools 3/4] COPY app.txt /app.txt',
  run: '[tools 4/4] RUN ["/tini", "-s", "--", "/tini", "--version"]',
  collect: '[stage-1 1/2] COPY --from=tools /app.txt /base.txt /out/',
  notes: '[stage-1 2/2] COPY notes.txt /notes.txt',
} as const;

/** Every step's name, in the order cachedStepNames() sorts them. */
export const ALL_STEPS: string[] = Object.values(STEPS).sort((a, b) => a.localeCompare(b));

/**
 * What BuildKit 0.8 gets from a complete BuildKit 0.13 cache of this build: 0.8's Dockerfile
 * frontend describes the RUN step differently from 0.13's (another cache key), so 0.8 runs
 * it again; the COPY --from of its output in the next stage still hits, by content.
 */
export const OLD_HITS: string[] = ALL_STEPS.filter((s) => s !== STEPS.run);

const DOCKERFILE = `FROM scratch AS tools
COPY tini /tini
COPY base.txt /base.txt
COPY app.txt /app.txt
RUN ["/tini", "-s", "--", "/tini", "--version"]

FROM scratch
COPY --from=tools /app.txt /base.txt /out/
COPY notes.txt /notes.txt
`;

export interface ContextFiles {
  app?: string;
  notes?: string;
}

/** Writes the context into `dir` (created); `app` and `notes` vary one source file. */
export async function writeBuildContext(dir: string, tini: string, files: ContextFiles = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'Dockerfile'), DOCKERFILE);
  await copyFile(tini, join(dir, 'tini'));
  await writeFile(join(dir, 'base.txt'), 'base\n');
  await writeFile(join(dir, 'app.txt'), files.app ?? 'app v1\n');
  await writeFile(join(dir, 'notes.txt'), files.notes ?? 'notes\n');
  return dir;
}
