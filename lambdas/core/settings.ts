import * as z from 'zod/mini';
import './validation.ts';

/**
 * Tuning of a run. Every value has a documented default (docs/operators.md repeats this table) and may be
 * overridden by the construct's props and then by the execution input.
 */
export interface UpgradeSettings {
  /** Rows per migrate batch (one transaction each), unless the step's file says otherwise. @default 1000 */
  readonly batchSize: number;
  /** Pause between two batches, leaving room for the application's own writes. @default 20 */
  readonly batchPauseMs: number;
  /** `lock_timeout` for every DDL step and every batch: how long a statement may queue behind a lock. @default 2000 */
  readonly lockTimeoutMs: number;
  /** `statement_timeout` for one batch statement. @default 30000 */
  readonly batchStatementTimeoutMs: number;
  /**
   * `statement_timeout` of every engine statement outside a batch: state and history reads and writes, lease
   * statements, pending queries, inspection queries. Under the RDS Data API's 45 s call limit, so that a slow
   * statement is cancelled by PostgreSQL and reported as `EngineTimeoutError` naming what was slow, instead of being
   * cut off by the API with a bare StatementTimeoutException. @default 30000
   */
  readonly engineStatementTimeoutMs: number;
  /**
   * `idle_in_transaction_session_timeout` of every engine transaction: a run frozen inside one of its transactions
   * (a process stopped mid-step) has its session ended by the server, which releases its locks (the lease row, a
   * step's DDL locks that block the application). Far above the gap between two statements of one transaction,
   * which is one client round trip. @default 15000
   */
  readonly idleInTransactionTimeoutMs: number;
  /** How long one migrate call runs batches before it returns its progress. @default 60000 */
  readonly migrateBudgetMs: number;
  /** How long the upgrade lease lives without renewal; every step and batch renews it. @default 900 */
  readonly leaseTtlSeconds: number;
}

export const DEFAULT_SETTINGS: UpgradeSettings = {
  batchSize: 1000,
  batchPauseMs: 20,
  lockTimeoutMs: 2000,
  batchStatementTimeoutMs: 30_000,
  engineStatementTimeoutMs: 30_000,
  idleInTransactionTimeoutMs: 15_000,
  migrateBudgetMs: 60_000,
  leaseTtlSeconds: 900,
};

const wholeNumber = (min: number, max: number) => z.optional(z.number().check(z.int(), z.minimum(min), z.maximum(max)));

/** The overridable settings, validated: from the execution input, CLI flags or construct props. */
export const settingsOverridesSchema = z.strictObject({
  batchSize: wholeNumber(1, 100_000),
  batchPauseMs: wholeNumber(0, 60_000),
  lockTimeoutMs: wholeNumber(100, 600_000),
  // The RDS Data API cancels a call after 45 s: a longer batch could never commit.
  batchStatementTimeoutMs: wholeNumber(1000, 45_000),
  // Below the Data API's 45 s with room for the call's own latency: PostgreSQL must cancel first, not the API.
  engineStatementTimeoutMs: wholeNumber(1000, 40_000),
  // Up to the Data API's own limit: it rolls back a transaction after 3 minutes without a call.
  idleInTransactionTimeoutMs: wholeNumber(1000, 180_000),
  migrateBudgetMs: wholeNumber(1000, 840_000),
  leaseTtlSeconds: wholeNumber(60, 86_400),
});

export type SettingsOverrides = z.infer<typeof settingsOverridesSchema>;

export function resolveSettings(...layers: (SettingsOverrides | undefined)[]): UpgradeSettings {
  const merged: Record<string, number> = { ...DEFAULT_SETTINGS };
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer ?? {})) {
      if (value !== undefined) merged[key] = value;
    }
  }
  return merged as unknown as UpgradeSettings;
}

/** The migrate function's timeout (the construct sets it; Lambda allows at most 15 minutes). */
export const MIGRATE_FUNCTION_TIMEOUT_MS = 15 * 60_000;

/**
 * Problems of a combination of settings that each pass the schema: a migrate call runs batches until its budget
 * is spent, then one more batch may run to its statement timeout, and the call must still end before the function
 * is cut off mid-batch.
 */
export function settingsProblems(
  settings: UpgradeSettings,
  /** How the caller's user names each setting (the construct's props are Durations named without the unit). */
  name: (setting: keyof UpgradeSettings) => string = (setting) => setting,
): string[] {
  const worstCallMs = settings.migrateBudgetMs + settings.batchStatementTimeoutMs + 60_000;
  return worstCallMs > MIGRATE_FUNCTION_TIMEOUT_MS
    ? [
        `${name('migrateBudgetMs')} (${settings.migrateBudgetMs} ms) + ${name('batchStatementTimeoutMs')} (${settings.batchStatementTimeoutMs} ms) + 60000 ms of margin must stay under the migrate function's ${MIGRATE_FUNCTION_TIMEOUT_MS} ms timeout`,
      ]
    : [];
}
