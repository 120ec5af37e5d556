import { ECSClient } from '@aws-sdk/client-ecs';
import { parseLambdaEnvironment } from './commons/environment.ts';
import { dataApiSql } from './commons/lambda-dependencies.ts';
import { createDrainTask } from './tasks/drain-task.ts';

const environment = parseLambdaEnvironment(process.env);
let ecs: ECSClient | undefined;

/**
 * Lambda entry point of the "drain" task of the upgrade state machine, which also answers "Record old release": the
 * only bundle with the ECS client (test/lambda-bundles.test.ts checks it).
 */
export const handler = createDrainTask({
  sql: dataApiSql(environment),
  ecs: () => (ecs ??= new ECSClient({})),
  drainSource: environment.drainSource,
  drainTimeoutSeconds: environment.drainTimeoutSeconds,
});
