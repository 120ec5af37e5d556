import type { ECSClient } from '@aws-sdk/client-ecs';
import type { Catalog } from '../../core/catalog/step.ts';
import type { DrainSourceConfig } from '../../core/drain/drain-gate.ts';
import type { SettingsOverrides } from '../../core/settings.ts';
import type { SqlClient } from '../../core/sql/sql-client.ts';

/**
 * What the task handlers need from the outside world, each task only its own part. In Lambda these come from the
 * environment (Data API, the compiled catalog in the bundle, lambda-dependencies.ts); tests pass node-postgres and a
 * migrations directory. The handlers themselves are the same code either way.
 */
export interface SqlDependency {
  /** The SQL client; created once and reused across invocations of a warm function. */
  readonly sql: () => Promise<SqlClient>;
}

export interface CatalogDependency {
  readonly catalog: () => Promise<Catalog>;
}

/** Expand, migrate and contract. */
export type PhaseDependencies = SqlDependency & CatalogDependency;

/** The start task ("Start upgrade"). */
export interface StartDependencies extends SqlDependency, CatalogDependency {
  readonly settingsDefaults: SettingsOverrides;
  readonly drainSource: DrainSourceConfig;
}

/** The drain task: the only one with an ECS client (for an ECS drain source). */
export interface DrainDependencies extends SqlDependency {
  readonly ecs: () => ECSClient;
  readonly drainSource: DrainSourceConfig;
  readonly drainTimeoutSeconds: number;
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
