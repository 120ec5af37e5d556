import { parseLambdaEnvironment } from './commons/environment.ts';
import { compiledCatalog, dataApiSql } from './commons/lambda-dependencies.ts';
import { createStartTask } from './tasks/start-task.ts';

const environment = parseLambdaEnvironment(process.env);

/** Lambda entry point of the "start" task ("Start upgrade") of the upgrade state machine. */
export const handler = createStartTask({
  sql: dataApiSql(environment),
  catalog: compiledCatalog(environment),
  settingsDefaults: environment.settings,
  drainSource: environment.drainSource,
});
