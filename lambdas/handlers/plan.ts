import { parseLambdaEnvironment } from './commons/environment.ts';
import { compiledCatalog, dataApiSql } from './commons/lambda-dependencies.ts';
import { createPlanTask } from './tasks/plan-task.ts';

const environment = parseLambdaEnvironment(process.env);

/** Lambda entry point of the "plan" task of the upgrade state machine. */
export const handler = createPlanTask({
  sql: dataApiSql(environment),
  catalog: compiledCatalog(environment),
  settingsDefaults: environment.settings,
  drainSource: environment.drainSource,
});
