/**
 * Where the CLI writes, and the small formatting helpers every command shares. Commands never touch
 * `process.stdout` directly: the program is given an `Io`, so tests run it in-process and read what it printed.
 */
export interface Io {
  /** Writes to standard output as is (add the newline yourself, or use `println`). */
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Standard output is a terminal: progress is drawn as a bar rewritten in place. */
  readonly isTTY: boolean;
}

export function println(io: Io, text = ''): void {
  io.stdout(`${text}\n`);
}

export function eprintln(io: Io, text = ''): void {
  io.stderr(`${text}\n`);
}

/** `--json` output: one document on stdout. */
export function printJson(io: Io, value: unknown): void {
  io.stdout(`${JSON.stringify(value, null, 2)}\n`);
}

/** Two columns, the labels padded to the longest. */
export function keyValues(rows: readonly (readonly [string, string | undefined | null])[]): string {
  const shown = rows.filter((row): row is readonly [string, string] => row[1] !== undefined && row[1] !== null);
  const width = Math.max(0, ...shown.map(([key]) => key.length));
  return shown
    .map(([key, value]) => {
      const [first = '', ...rest] = value.split('\n');
      return [`${key.padEnd(width)}  ${first}`, ...rest.map((line) => `${' '.repeat(width)}  ${line}`)].join('\n');
    })
    .join('\n');
}

/**
 * A plain table: a header row (with `rule`, a row of dashes under it), then rows, columns padded to the widest cell.
 * The CLI's tables and the local demo's report.
 */
export function table(header: readonly string[], rows: readonly (readonly string[])[], options: { readonly rule?: boolean } = {}): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const render = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const rule = options.rule ? [widths.map((w) => '-'.repeat(w)).join('  ')] : [];
  return [render(header), ...rule, ...rows.map(render)].join('\n');
}

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, '0')}m`;
}

/** `2025-06-01 10:00:01 UTC`. */
export function formatTime(iso: string | undefined): string | undefined {
  return iso === undefined ? undefined : `${iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '')} UTC`;
}

/** `[██████░░░░░░░░░░] 37%`, or without a known total just the count. */
export function progressBar(done: number, total: number | null, width = 24): string {
  if (total === null || total <= 0) return '';
  const ratio = Math.min(1, Math.max(0, done / total));
  const filled = Math.round(ratio * width);
  return `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${String(Math.floor(ratio * 100)).padStart(3)}%`;
}
