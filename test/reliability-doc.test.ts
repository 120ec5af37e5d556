import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  FIGURES_BEGIN,
  FIGURES_END,
  readFigures,
  recordFigures,
  RELIABILITY_DOC,
  renderIntoDoc,
} from './support/reliability-figures.ts';

/** The figures flow: tests record one file per section in a folder, `npm run docs:reliability` renders the doc. */
const folders: string[] = [];
function figuresFolder(): string {
  const folder = mkdtempSync(join(tmpdir(), 'emc-figures-'));
  folders.push(folder);
  return folder;
}
afterEach(() => {
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

describe('reliability figures', () => {
  it('renders every recorded section, ordered by name, between the markers and nowhere else', async () => {
    const folder = figuresFolder();
    await recordFigures('locks', 'test/locks.test.ts', [{ check: 'DDL behind a lock', tried: 2, passed: 2, detail: 'waited 0.5 s | each' }], folder);
    await recordFigures('faults 1: kill', 'test/kill.test.ts', [{ check: 'kill points', tried: 184, passed: 183, detail: 'one left' }], folder);
    // A section recorded again replaces its previous figures.
    await recordFigures('locks', 'test/locks.test.ts', [{ check: 'DDL behind a lock', tried: 3, passed: 3, detail: 'waited 0.5 s | each' }], folder);
    const doc = `# Title\n\nbefore\n\n${FIGURES_BEGIN}\nan old table\n${FIGURES_END}\n\nafter\n`;

    const rendered = renderIntoDoc(doc, readFigures(folder));

    expect(rendered).toBe(
      [
        '# Title',
        '',
        'before',
        '',
        FIGURES_BEGIN,
        '| Section | What was tried | Tried | Passed | Details | Test file |',
        '| --- | --- | ---: | ---: | --- | --- |',
        '| faults 1: kill | kill points | 184 | 183 | one left | `test/kill.test.ts` |',
        '| locks | DDL behind a lock | 3 | 3 | waited 0.5 s \\| each | `test/locks.test.ts` |',
        FIGURES_END,
        '',
        'after',
        '',
      ].join('\n'),
    );
    expect(renderIntoDoc(rendered, readFigures(folder))).toBe(rendered);
  });

  it('refuses a document without the markers', () => {
    expect(() => renderIntoDoc('# no table here\n', [])).toThrow(/no figures markers/);
  });

  it('docs/reliability.md has the markers the script renders between', () => {
    const doc = readFileSync(RELIABILITY_DOC, 'utf8');
    expect(() => renderIntoDoc(doc, [])).not.toThrow();
  });
});
