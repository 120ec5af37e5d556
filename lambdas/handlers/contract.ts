import { parseLambdaEnvironment } from './commons/environment.ts';
import { compiledCatalog, dataApiSql } from './commons/lambda-dependencies.ts';
import { createContractTask } from './tasks/contract-task.ts';

const environment = parseLambdaEnvironment(process.env);

/** Lambda entry point of the "contract" task of the upgrade state machine. */
export const handler = createContractTask({ sql: dataApiSql(environment), catalog: compiledCatalog(environment) });
