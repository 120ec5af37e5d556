import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileCatalog } from '../lambdas/core/catalog/compiled-catalog.ts';
import { loadCatalogSync } from '../lambdas/core/catalog/load-catalog.ts';
import type { Catalog } from '../lambdas/core/catalog/step.ts';
import { CatalogError } from '../lambdas/core/errors.ts';
import { checkLockSafety, formatLockFindings } from '../lambdas/core/lint/lock-lint.ts';
import { ensureParserLoaded } from '../lambdas/core/sql/parser.ts';
import { ConstructPropsError } from './construct-props-error.ts';

// Constructs are synchronous; PostgreSQL's parser (WebAssembly) loads once, when this module is imported.
await ensureParserLoaded();

/** File name of the compiled catalog inside each function's bundle. */
export const CATALOG_FILE_NAME = 'emc-catalog.json';

/**
 * Validates the migrations directory at `cdk synth` as `emc lint` does (a bad catalog, or a lock-safety finding no
 * `emc:allow-lock` allows, fails the synth with every problem listed) and writes the compiled catalog that ships in
 * the function bundles. Runs squawk: `LintToolUnavailableError` when it cannot.
 */
export function compileCatalogForSynth(directory: string): { catalog: Catalog; file: string } {
  let catalog: Catalog;
  try {
    catalog = loadCatalogSync(directory);
    const { findings } = checkLockSafety(catalog);
    if (findings.length > 0) {
      throw new ConstructPropsError('migrationsDirectory', `migrationsDirectory ${directory}: ${formatLockFindings(findings)}`);
    }
  } catch (error) {
    if (error instanceof CatalogError) {
      throw new ConstructPropsError('migrationsDirectory', `migrationsDirectory ${directory}: ${error.message}`, { cause: error });
    }
    throw error;
  }
  const file = join(mkdtempSync(join(tmpdir(), 'emc-catalog-')), CATALOG_FILE_NAME);
  writeFileSync(file, JSON.stringify(compileCatalog(catalog)));
  return { catalog, file };
}
