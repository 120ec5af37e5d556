import { ECSClient } from '@aws-sdk/client-ecs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readCompiledCatalog } from '../../core/catalog/compiled-catalog.ts';
import type { DrainSourceConfig } from '../../core/drain/drain-gate.ts';
import type { SettingsOverrides } from '../../core/settings.ts';
import { DataApiSqlClient } from '../../core/sql/data-api-client.ts';
import { once, type HandlerDependencies } from './dependencies.ts';
import { ENV, requiredEnv, requiredJsonEnv } from './environment.ts';

/** Dependencies of a handler running in AWS Lambda: the RDS Data API and the catalog compiled at synth. */
export function lambdaDependencies(): HandlerDependencies {
  let ecs: ECSClient | undefined;
  return {
    sql: once(async () =>
      new DataApiSqlClient({
        resourceArn: requiredEnv(ENV.clusterArn),
        secretArn: requiredEnv(ENV.secretArn),
        database: requiredEnv(ENV.databaseName),
      }),
    ),
    catalog: once(async () => {
      const file = join(dirname(fileURLToPath(import.meta.url)), requiredEnv(ENV.catalogFile));
      return readCompiledCatalog(await readFile(file, 'utf8'), file);
    }),
    ecs: () => (ecs ??= new ECSClient({})),
    settingsDefaults: requiredJsonEnv<SettingsOverrides>(ENV.settings),
    drain: {
      source: requiredJsonEnv<DrainSourceConfig>(ENV.drainSource),
      timeoutSeconds: Number(requiredEnv(ENV.drainTimeoutSeconds)),
    },
  };
}
