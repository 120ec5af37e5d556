import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');

/** The engine's entries for code outside the Lambda tasks (the handlers import modules directly, one bundle a task). */
const ENTRIES = ['lambdas/core/index.ts', 'lambdas/core/workflow/index.ts'];
/**
 * bin/local only: the SQL text tools the Data API emulator and the demo database share with the catalog (splitting
 * and parsing SQL); they are not the engine's API.
 */
const LOCAL_SQL_TOOLS = ['lambdas/core/catalog/sql-statements.ts', 'lambdas/core/sql/parser.ts', 'lambdas/core/sql/named-parameters.ts'];

function sources(directory: string): string[] {
  return readdirSync(join(ROOT, directory), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts'))
    .map((file) => join(ROOT, directory, file));
}

/** Every module of lambdas/core a file imports, as a path from the repository's root. */
function engineImports(file: string): string[] {
  const specifiers = [...readFileSync(file, 'utf8').matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*'([^']+)'/g)].map((m) => m[1]!);
  return specifiers
    .filter((s) => s.startsWith('.'))
    .map((s) => relative(ROOT, join(file, '..', s)))
    .filter((path) => path.startsWith('lambdas/core/'));
}

describe('the engine is entered through its entries', () => {
  it.each([
    ['bin/cli', ENTRIES],
    ['bin/local', [...ENTRIES, ...LOCAL_SQL_TOOLS]],
  ])('%s imports lambdas/core only through lambdas/core/index.ts and lambdas/core/workflow/index.ts', (directory, allowed) => {
    const files = sources(directory);
    expect(files.length).toBeGreaterThan(0);
    const deep = files.flatMap((file) =>
      engineImports(file)
        .filter((path) => !allowed.includes(path))
        .map((path) => `${relative(ROOT, file)} imports ${path}`),
    );
    expect(deep).toEqual([]);
  });

  it('reads multi-line and type-only imports, deep ones included', () => {
    expect(engineImports(join(ROOT, 'bin/cli/abort.ts'))).toEqual(['lambdas/core/index.ts']);
    expect(engineImports(join(ROOT, 'bin/local/demo-database.ts'))).toEqual([
      'lambdas/core/catalog/sql-statements.ts',
      'lambdas/core/sql/parser.ts',
      'lambdas/core/index.ts',
    ]);
  });
});
