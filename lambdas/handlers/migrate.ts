import { parseLambdaEnvironment } from './commons/environment.ts';
import { compiledCatalog, dataApiSql } from './commons/lambda-dependencies.ts';
import { createMigrateTask } from './tasks/migrate-task.ts';

const environment = parseLambdaEnvironment(process.env);

/** Lambda entry point of the "migrate" task of the upgrade state machine. */
export const handler = createMigrateTask({ sql: dataApiSql(environment), catalog: compiledCatalog(environment) });
