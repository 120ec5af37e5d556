import { parseLambdaEnvironment } from './commons/environment.ts';
import { dataApiSql } from './commons/lambda-dependencies.ts';
import { createRecordFailureTask } from './tasks/record-failure-task.ts';

/** Lambda entry point of the "recordFailure" task of the upgrade state machine. */
export const handler = createRecordFailureTask({ sql: dataApiSql(parseLambdaEnvironment(process.env)) });
