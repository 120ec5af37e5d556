/** Small statistics and formatting helpers for the benchmark's figures. */

/** The middle value; the mean of the two middle values for an even count. NaN for no values. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Nearest-rank percentile (p in 0..100); NaN for no values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function max(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((a, b) => Math.max(a, b), -Infinity);
}

/**
 * The items whose position in the sequence falls in [from, to) of its length (0..1), at least one item: "the
 * batches around 10% of the migration" is `around(batches, 0.05, 0.15)`.
 */
export function around<T>(items: readonly T[], from: number, to: number): T[] {
  if (items.length === 0) return [];
  const start = Math.min(items.length - 1, Math.floor(from * items.length));
  const end = Math.max(start + 1, Math.floor(to * items.length));
  return items.slice(start, end);
}

export function ratio(numerator: number, denominator: number): number {
  return denominator === 0 ? Number.NaN : numerator / denominator;
}

/** 1234567 -> "1,234,567"; fractions to `digits` decimals. */
export function num(value: number, digits = 0): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function ms(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  if (value >= 10_000) return `${num(value / 1000, 1)} s`;
  return value >= 100 ? `${num(value)} ms` : `${num(value, value >= 10 ? 1 : 2)} ms`;
}

export function times(value: number): string {
  return Number.isFinite(value) ? `${num(value, 2)}×` : 'n/a';
}

export function pct(value: number): string {
  return Number.isFinite(value) ? `${num(value * 100)}%` : 'n/a';
}

export function bytes(value: number): string {
  return `${num(value / 1024, 1)} KiB`;
}
