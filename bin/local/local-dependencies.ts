import type { ECSClient } from '@aws-sdk/client-ecs';
import { loadCatalog } from '../../lambdas/core/catalog/load-catalog.ts';
import type { DrainSource } from '../../lambdas/core/drain/drain-gate.ts';
import type { SettingsOverrides } from '../../lambdas/core/settings.ts';
import { PgSqlClient } from '../../lambdas/core/sql/pg-client.ts';
import type { SqlClient } from '../../lambdas/core/sql/sql-client.ts';
import { once, type HandlerDependencies } from '../../lambdas/handlers/commons/dependencies.ts';
import { ENV } from '../../lambdas/handlers/commons/environment.ts';

/**
 * The handlers' dependencies for a local run: node-postgres instead of the Data API and the migrations directory
 * instead of the compiled catalog; settings and the drain source are read from the functions' environment in the
 * synthesized template, exactly as the construct configured them.
 */
export function localDependencies(options: {
  readonly databaseUrl: string;
  readonly migrationsDirectory: string;
  readonly functionEnvironment: Readonly<Record<string, string>>;
  /** Overrides of the construct's settings for this machine (e.g. a shorter migrate budget). */
  readonly settings?: SettingsOverrides;
  readonly ecs?: ECSClient;
}): HandlerDependencies & { close(): Promise<void> } {
  let client: SqlClient | undefined;
  const env = options.functionEnvironment;
  return {
    sql: once(async () => (client = new PgSqlClient(options.databaseUrl, { applicationName: 'emc-upgrade' }))),
    catalog: once(() => loadCatalog(options.migrationsDirectory)),
    ecs: () => {
      if (!options.ecs) throw new Error('The ECS drain source cannot run locally; use DrainSource.databaseSessions.');
      return options.ecs;
    },
    settingsDefaults: { ...(JSON.parse(env[ENV.settings] ?? '{}') as SettingsOverrides), ...options.settings },
    drain: {
      source: JSON.parse(env[ENV.drainSource]!) as DrainSource,
      timeoutSeconds: Number(env[ENV.drainTimeoutSeconds]),
    },
    async close() {
      await client?.close();
    },
  };
}
