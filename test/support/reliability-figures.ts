import { mkdir, rename, writeFile } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { markdownTable } from '../../scripts/markdown-table.ts';

/**
 * The reliability tests record what they tried and what they found, one file per section under an ignored folder
 * (`.emc-local/reliability-figures/`), so that `npm test` changes no tracked file and parallel workers never write
 * the same file. `npm run docs:reliability` renders those files into the figures table of `docs/reliability.md`
 * (between its two marker comments).
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
export const FIGURES_DIRECTORY = join(ROOT, '.emc-local/reliability-figures');
export const RELIABILITY_DOC = join(ROOT, 'docs/reliability.md');
export const FIGURES_BEGIN = '<!-- figures:begin (rendered by `npm run docs:reliability`; do not edit by hand) -->';
export const FIGURES_END = '<!-- figures:end -->';

/** One line of the figures table. */
export interface Figure {
  /** What was tried, in a few words. */
  readonly check: string;
  /** How many cases (kill points, writes, inputs, ...) were tried. */
  readonly tried: number;
  /** How many behaved as required (converged, succeeded, were refused with the right message, ...). */
  readonly passed: number;
  /** Further figures worth reading, in words. */
  readonly detail: string;
}

/** The file one section's figures are recorded in. */
export interface SectionFigures {
  readonly section: string;
  readonly recordedAt: string;
  readonly test: string;
  readonly figures: readonly Figure[];
}

/** Records the figures of one section (e.g. "faults"), replacing that section's previous figures. */
export async function recordFigures(section: string, test: string, figures: Figure[], directory = FIGURES_DIRECTORY): Promise<void> {
  await mkdir(directory, { recursive: true });
  const record: SectionFigures = { section, recordedAt: new Date().toISOString(), test, figures };
  const file = join(directory, `${section.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '')}.json`);
  // Written then renamed, so the renderer never reads half a file.
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(record, null, 2)}\n`);
  await rename(temporary, file);
}

/** Every section recorded in `directory`, ordered by section name. */
export function readFigures(directory = FIGURES_DIRECTORY): SectionFigures[] {
  const files = readdirSync(directory).filter((name) => name.endsWith('.json'));
  return files
    .map((name) => JSON.parse(readFileSync(join(directory, name), 'utf8')) as SectionFigures)
    .sort((a, b) => a.section.localeCompare(b.section));
}

/** The figures table, one line per figure. */
export function renderFiguresTable(sections: readonly SectionFigures[]): string {
  const rows = sections.flatMap(({ section, figures, test }) =>
    figures.map((f) => [section, f.check, String(f.tried), String(f.passed), f.detail, `\`${test}\``]),
  );
  return markdownTable(['Section', 'What was tried', 'Tried', 'Passed', 'Details', 'Test file'], rows, ['left', 'left', 'right', 'right']);
}

/** `doc` with the text between its two marker comments replaced by the figures table; refuses a doc without them. */
export function renderIntoDoc(doc: string, sections: readonly SectionFigures[]): string {
  const start = doc.indexOf(FIGURES_BEGIN);
  const end = doc.indexOf(FIGURES_END);
  if (start < 0 || end < start) {
    throw new Error(`The document has no figures markers: expected the line "${FIGURES_BEGIN}", later followed by "${FIGURES_END}"`);
  }
  return `${doc.slice(0, start + FIGURES_BEGIN.length)}\n${renderFiguresTable(sections)}\n${doc.slice(end)}`;
}
