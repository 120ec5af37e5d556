import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readCompiledCatalog } from '../../core/catalog/compiled-catalog.ts';
import { DataApiSqlClient } from '../../core/sql/data-api-client.ts';
import { once, type CatalogDependency, type SqlDependency } from './dependencies.ts';
import type { LambdaEnvironment } from './environment.ts';

/** The SQL client of a function in AWS Lambda: the RDS Data API on the configured cluster. */
export function dataApiSql(environment: LambdaEnvironment): SqlDependency['sql'] {
  return once(async () =>
    new DataApiSqlClient({
      resourceArn: environment.clusterArn,
      secretArn: environment.secretArn,
      database: environment.databaseName,
    }),
  );
}

/** The catalog compiled at synth, next to the handler in the bundle (this module is inlined into the bundle file). */
export function compiledCatalog(environment: LambdaEnvironment): CatalogDependency['catalog'] {
  return once(async () => {
    const file = join(dirname(fileURLToPath(import.meta.url)), environment.catalogFile);
    return readCompiledCatalog(await readFile(file, 'utf8'), file);
  });
}
