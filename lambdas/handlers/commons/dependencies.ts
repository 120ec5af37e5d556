import type { ECSClient } from '@aws-sdk/client-ecs';
import type { Catalog } from '../../core/catalog/step.ts';
import type { DrainSourceConfig } from '../../core/drain/drain-gate.ts';
import type { SettingsOverrides } from '../../core/settings.ts';
import type { SqlClient } from '../../core/sql/sql-client.ts';

/**
 * What the workflow handlers need from the outside world. In Lambda these come from the environment (Data API,
 * the compiled catalog in the bundle); the local runner passes node-postgres and a migrations directory. The
 * handlers themselves are the same code either way.
 */
export interface HandlerDependencies {
  /** The SQL client; created once and reused across invocations of a warm function. */
  readonly sql: () => Promise<SqlClient>;
  readonly catalog: () => Promise<Catalog>;
  readonly ecs: () => ECSClient;
  readonly settingsDefaults: SettingsOverrides;
  readonly drain: { readonly source: DrainSourceConfig; readonly timeoutSeconds: number };
}

/** Memoises an async factory: one client or catalog per process. */
export function once<T>(factory: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | undefined;
  return () => {
    value ??= factory().catch((error: unknown) => {
      value = undefined;
      throw error;
    });
    return value;
  };
}
