// How inspect and doctor lay out a report for a person: labelled rows, sizes, and color
// only when the output is a terminal. Pure.

/** Where a report goes, and how: JSON for tools, text (colored or not) for a person. */
export interface Output {
  write(text: string): void;
  json: boolean;
  color: boolean;
}

export interface Paint {
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  bold(s: string): string;
  dim(s: string): string;
}

const ANSI = (open: number, close: number) => (s: string) => `\u001b[${open}m${s}\u001b[${close}m`;
const PLAIN = (s: string) => s;

export function paint(color: boolean): Paint {
  return color
    ? { red: ANSI(31, 39), green: ANSI(32, 39), yellow: ANSI(33, 39), bold: ANSI(1, 22), dim: ANSI(2, 22) }
    : { red: PLAIN, green: PLAIN, yellow: PLAIN, bold: PLAIN, dim: PLAIN };
}

/** `label   value` rows; a value's further lines are indented under its first. */
export function labelled(rows: readonly [string, string][]): string {
  const width = Math.max(...rows.map(([label]) => label.length)) + 2;
  return rows.map(([label, value]) => `  ${label.padEnd(width)}${value.split('\n').join(`\n  ${' '.repeat(width)}`)}`).join('\n') + '\n';
}

/** 975 B, 1.2 KiB, 3.4 MiB. */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** Pretty JSON with every field present: an absent value is null, so the shape never changes. */
export function jsonText(doc: unknown): string {
  return `${JSON.stringify(doc, (_key, value: unknown) => (value === undefined ? null : value), 2)}\n`;
}
