import * as z from 'zod/mini';
import './validation.ts';

/**
 * Tuning of a run. Every value has a documented default (docs/operators.md repeats this table) and may be
 * overridden by the construct's props and then by the execution input.
 */
export interface UpgradeSettings {
  /**
   * Rows of a migrate call's first batch (one statement each); later batches size themselves toward `targetBatchMs`.
   * A step's `emc:batch-size` fixes its size instead. @default 1000
   */
  readonly batchSize: number;
  /**
   * Target duration of one migrate batch: each batch's size adapts from the measured time of recent batches, within
   * 10 to 50,000 rows (`MIN_ADAPTIVE_BATCH_SIZE`, `MAX_ADAPTIVE_BATCH_SIZE`), so a fast table gets big batches (few
   * round trips) and a slow or contended one small ones (short row locks). 0: every batch is `batchSize` rows.
   * The default keeps one call's round trip (about 10 ms on the Data API) near 5% of a batch, while an application
   * write queued behind a batch's row locks waits at most about a tenth of `lockTimeoutMs`. @default 200
   */
  readonly targetBatchMs: number;
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
  targetBatchMs: 200,
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
  targetBatchMs: wholeNumber(0, 10_000),
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
  const problems: string[] = [];
  const worstCallMs = settings.migrateBudgetMs + settings.batchStatementTimeoutMs + 60_000;
  if (worstCallMs > MIGRATE_FUNCTION_TIMEOUT_MS) {
    problems.push(
      `${name('migrateBudgetMs')} (${settings.migrateBudgetMs} ms) + ${name('batchStatementTimeoutMs')} (${settings.batchStatementTimeoutMs} ms) + 60000 ms of margin must stay under the migrate function's ${MIGRATE_FUNCTION_TIMEOUT_MS} ms timeout`,
    );
  }
  // Batches sized to take about the target would be cancelled at the statement timeout.
  if (settings.targetBatchMs >= settings.batchStatementTimeoutMs) {
    problems.push(
      `${name('targetBatchMs')} (${settings.targetBatchMs} ms) must be under ${name('batchStatementTimeoutMs')} (${settings.batchStatementTimeoutMs} ms)`,
    );
  }
  return problems;
}
