import { parseLambdaEnvironment } from './commons/environment.ts';
import { compiledCatalog, dataApiSql } from './commons/lambda-dependencies.ts';
import { createExpandTask } from './tasks/expand-task.ts';

const environment = parseLambdaEnvironment(process.env);

/** Lambda entry point of the "expand" task of the upgrade state machine. */
export const handler = createExpandTask({ sql: dataApiSql(environment), catalog: compiledCatalog(environment) });
