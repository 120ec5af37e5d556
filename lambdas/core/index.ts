/**
 * The engine's API for code that drives it from outside the Lambda tasks: the package's `emc-upgrade/engine` export
 * (package.json, pinned by test/package.test.ts), the CLI, the tests and the benchmark. Knows nothing of Lambda or
 * Step Functions: the workflow's contract (lambdas/core/workflow) is imported from there. The Lambda handlers import
 * the modules they use directly, so that each task's bundle holds only what that task runs.
 */
export { loadCatalog, RELEASES_FILE } from './catalog/load-catalog.ts';
export { PHASES, stepId, stepsUpTo, type Catalog, type Phase } from './catalog/step.ts';
export * from './errors.ts';
export { contract, type ContractOptions } from './phases/contract.ts';
export { expand, type SchemaPhaseResult } from './phases/expand.ts';
export { inspect, resolveTarget } from './phases/inspect.ts';
export { migrate, type MigrateResult, type MigrateStepProgress } from './phases/migrate.ts';
export { migrateToEnd, type MigrateToEndOptions } from './phases/migrate-to-end.ts';
export { plan, type Plan } from './phases/plan.ts';
export type { EngineEvent, RunContext } from './phases/run-context.ts';
export { DEFAULT_SETTINGS, resolveSettings, settingsOverridesSchema, type SettingsOverrides, type UpgradeSettings } from './settings.ts';
export { PgSqlClient } from './sql/pg-client.ts';
export { SqlError, type SqlClient, type SqlParams, type SqlResult, type SqlSession, type SqlValue } from './sql/sql-client.ts';
export { formatVersion, NO_VERSION, type CompositeVersion } from './state/composite-version.ts';
export { readState } from './state/database-state.ts';
export { readHistory, type HistoryEntry } from './state/history.ts';
export { acquireLease, currentLease, releaseLease } from './state/lease.ts';
export { ensureStateSchema, STATE_SCHEMA } from './state/schema.ts';
export type { Migration, SchemaStep, Step } from './steps/step-kind.ts';
