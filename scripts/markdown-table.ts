/**
 * A Markdown table: the header, its rule, then one line per row; a `|` in a cell is escaped. `align` gives a
 * column's alignment by index (`right` for figures); columns it leaves out are left-aligned. The benchmark's report
 * and the reliability figures in docs/reliability.md are rendered with it.
 */
export function markdownTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  align: readonly ('left' | 'right')[] = [],
): string {
  const line = (cells: readonly string[]) => `| ${cells.map((c) => c.replaceAll('|', '\\|')).join(' | ')} |`;
  const rule = `| ${headers.map((_, i) => (align[i] === 'right' ? '---:' : '---')).join(' | ')} |`;
  return [line(headers), rule, ...rows.map(line)].join('\n');
}
