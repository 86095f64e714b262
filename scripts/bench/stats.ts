// Medians, ranges and formatting.
export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export const fmt = (n: number, digits = 0): string =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '-';

/** "median (min-max)", or the median alone for a single value. */
export function cell(values: number[], digits = 0): string {
  if (values.length === 0) return '-';
  if (values.length === 1) return fmt(values[0]!, digits);
  return `${fmt(median(values), digits)} (${fmt(Math.min(...values), digits)}-${fmt(Math.max(...values), digits)})`;
}

export const mbps = (bytes: number, seconds: number): number => bytes / 1e6 / seconds; // MB = 10^6 bytes
