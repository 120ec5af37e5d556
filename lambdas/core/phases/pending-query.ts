import type { Migration } from '../steps/step-kind.ts';
import { StepFailedError } from '../errors.ts';
import { SqlError } from '../sql/sql-client.ts';
import type { ReadOnlySession } from '../state/engine-transaction.ts';

/** SQLSTATE 25006 read_only_sql_transaction: a write attempted in a READ ONLY transaction. */
const READ_ONLY_SQL_TRANSACTION = '25006';

/**
 * The step's pending query (rows still to migrate), or undefined when it has none. It runs only in a READ ONLY
 * transaction under the engine's statement timeout (the session's type says so): a pending query that would write,
 * itself or through a function it calls, fails instead of changing data, so plan's preview, the contract gate and
 * progress reports never write through it. A query slower than the timeout fails as `EngineTimeoutError` naming it.
 */
export async function pendingRows(tx: ReadOnlySession, step: Migration): Promise<number | undefined> {
  const sql = step.pendingSql;
  if (!sql) return undefined;
  let value: unknown;
  try {
    const result = await tx.queryAs(`the pending query of ${step.id} (${step.file})`, sql);
    value = Object.values(result.rows[0] ?? {})[0];
  } catch (error) {
    if (!(error instanceof SqlError)) throw error;
    const problem =
      error.sqlState === READ_ONLY_SQL_TRANSACTION
        ? `its pending query tried to write (${error.message}): pending queries must be read-only, they only count the rows still to migrate`
        : `its pending query failed: ${error.message}`;
    throw new StepFailedError(step.id, sql, error.sqlState, `${problem} (${step.file}, "emc:pending")`, {
      cause: error,
      transactional: true,
      place: { file: step.file },
    });
  }
  const count = Number(value ?? 0);
  if (!Number.isFinite(count)) {
    throw new StepFailedError(step.id, sql, undefined, `its pending query returned "${String(value)}", not a number`, {
      transactional: true,
      place: { file: step.file },
    });
  }
  return count;
}
