/**
 * The engine's API for code that drives it from outside the Lambda tasks: the package's `emc-upgrade/engine` export
 * (package.json, pinned by test/package.test.ts), the CLI, the local runs, the tests and the benchmark. Knows nothing
 * of Lambda or Step Functions: the workflow (its task contract, state names, execution input, start and finish) has
 * its own entry, lambdas/core/workflow/index.ts. bin/cli imports lambdas/core through these two files only, bin/local
 * besides them only the SQL text tools it shares with the catalog (test/engine-entry.test.ts). The Lambda handlers
 * import the modules they use directly, so that each task's bundle holds only what that task runs.
 */
export { DIRECTIVES, type DirectiveName } from './catalog/directives.ts';
export { loadCatalog, RELEASE_NAME, RELEASES_FILE, STEP_FILE } from './catalog/load-catalog.ts';
export { PHASES, stepId, stepsUpTo, type Catalog, type Phase } from './catalog/step.ts';
export { pollDrainGate, type DrainGateState } from './drain/drain-gate.ts';
export { sessionPatternProblem } from './drain/session-drain.ts';
export * from './errors.ts';
export { checkLockSafety, formatLockFindings, type LockFinding, type LockSafety } from './lint/lock-lint.ts';
export { contract, type ContractOptions } from './phases/contract.ts';
export { expand, type SchemaPhaseResult } from './phases/expand.ts';
export { contractGates } from './phases/gates.ts';
export { inspect, resolveTarget } from './phases/inspect.ts';
export { migrate, type MigrateResult, type MigrateStepProgress } from './phases/migrate.ts';
export { migrateToEnd, type MigrateToEndOptions } from './phases/migrate-to-end.ts';
export { plan, type Plan } from './phases/plan.ts';
export { leased, reading, type EngineEvent, type RunContext } from './phases/run-context.ts';
export {
  DEFAULT_SETTINGS,
  resolveSettings,
  settingsOverridesSchema,
  settingsProblems,
  type SettingsOverrides,
  type UpgradeSettings,
} from './settings.ts';
export { DataApiSqlClient } from './sql/data-api-client.ts';
export { PgSqlClient } from './sql/pg-client.ts';
export { SqlError, type SqlClient, type SqlParams, type SqlResult, type SqlSession, type SqlValue } from './sql/sql-client.ts';
export { formatVersion, NO_VERSION, type CompositeVersion } from './state/composite-version.ts';
export { readState } from './state/database-state.ts';
export { boundedTransaction, DEFAULT_BOUNDS, engineBounds, readTransaction, type EngineBounds } from './state/engine-transaction.ts';
export { readHistory, recordAbort, type HistoryEntry } from './state/history.ts';
export { acquireLease, currentLease, releaseLease } from './state/lease.ts';
export { ensureStateSchema, STATE_SCHEMA, stateSchemaExists } from './state/schema.ts';
export type { Migration, SchemaStep, Step } from './steps/step-kind.ts';
