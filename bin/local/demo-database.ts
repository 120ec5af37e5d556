import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { splitStatements } from '../../lambdas/core/catalog/sql-statements.ts';
import { ensureParserLoaded } from '../../lambdas/core/sql/parser.ts';
import type { SqlClient } from '../../lambdas/core/index.ts';

const DEMO = join(dirname(fileURLToPath(import.meta.url)), '../../demo');

/** The demo release `bexar` shipped with the tool. */
export const DEMO_MIGRATIONS = join(DEMO, 'migrations');
const DEMO_SEED = join(DEMO, 'seed.sql');

/** Creates the demo application's schema as the release before bexar knows it, with `rows` images. */
export async function seedDemoDatabase(client: SqlClient, rows: number): Promise<void> {
  await ensureParserLoaded();
  const split = splitStatements(readFileSync(DEMO_SEED, 'utf8'));
  if (!split.ok) throw new Error(`demo/seed.sql:${split.line}:${split.column}: ${split.message}`);
  for (const statement of split.statements) {
    await client.query(statement.sql, statement.sql.includes(':rows') ? { rows } : {});
  }
}
