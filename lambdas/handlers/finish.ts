import { parseLambdaEnvironment } from './commons/environment.ts';
import { dataApiSql } from './commons/lambda-dependencies.ts';
import { createFinishTask } from './tasks/finish-task.ts';

/** Lambda entry point of the "finish" task of the upgrade state machine. */
export const handler = createFinishTask({ sql: dataApiSql(parseLambdaEnvironment(process.env)) });
