/**
 * `npm run docs:reliability`: renders the figures the reliability tests recorded under `.emc-local/reliability-figures/`
 * into the figures table of `docs/reliability.md`. Run the tests first (`npx vitest run test/reliability-`).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { FIGURES_DIRECTORY, readFigures, RELIABILITY_DOC, renderIntoDoc } from '../test/support/reliability-figures.ts';

if (!existsSync(FIGURES_DIRECTORY)) {
  console.error(`No figures in ${relative(process.cwd(), FIGURES_DIRECTORY)}: run the reliability tests first (npx vitest run test/reliability-).`);
  process.exit(1);
}
const sections = readFigures();
writeFileSync(RELIABILITY_DOC, renderIntoDoc(readFileSync(RELIABILITY_DOC, 'utf8'), sections));
console.log(
  `${relative(process.cwd(), RELIABILITY_DOC)}: ${sections.length} sections rendered (${sections.map((s) => `${s.section} ${s.recordedAt}`).join('; ')})`,
);
