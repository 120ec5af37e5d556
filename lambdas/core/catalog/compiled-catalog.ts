import type { Catalog } from './step.ts';

/**
 * The catalog as validated at `cdk synth`, shipped inside each Lambda bundle as JSON: the functions then need
 * neither the SQL parser nor the raw files at run time, and run exactly the statements that were validated. The
 * checksums are those of the files, so drift is still detected against the database.
 */
export interface CompiledCatalog {
  readonly format: typeof COMPILED_CATALOG_FORMAT;
  readonly releases: Catalog['releases'];
  readonly steps: Catalog['steps'];
}

export const COMPILED_CATALOG_FORMAT = 'emc-catalog/2';

export function compileCatalog(catalog: Catalog): CompiledCatalog {
  return { format: COMPILED_CATALOG_FORMAT, releases: catalog.releases, steps: catalog.steps };
}

export function readCompiledCatalog(json: string, source: string): Catalog {
  const parsed = JSON.parse(json) as Partial<CompiledCatalog>;
  if (parsed.format !== COMPILED_CATALOG_FORMAT || !Array.isArray(parsed.releases) || !Array.isArray(parsed.steps)) {
    throw new Error(`${source} is not a compiled migrations catalog of format ${COMPILED_CATALOG_FORMAT}`);
  }
  return { directory: source, releases: parsed.releases, steps: parsed.steps };
}
