import type { Migration } from '../steps/step-kind.ts';
import { StepFailedError } from '../errors.ts';
import { leaseError, type RunContext } from '../phases/run-context.ts';
import { SqlError } from '../sql/sql-client.ts';
import type { ProgressRow } from '../state/migrate-progress.ts';
import { BATCH_PROGRESS_MOVED, STATE_SCHEMA } from '../state/schema.ts';
import type { BatchSource } from './batch-source.ts';

export interface BatchOutcome {
  readonly ran: boolean;
  readonly rows: number;
  readonly passEnded: boolean;
  readonly progress: ProgressRow;
  /**
   * The call's time outside the database: this process's time for it less the statement's own (`database_ms`). The
   * database was not working on this batch meanwhile, so it counts toward the pause before the next one.
   */
  readonly outsideDatabaseMs: number;
}

/**
 * One batch, one statement (one RDS Data API call, autocommitted): the batch function (`run_batch`, state/schema.ts)
 * renews the lease, reads the next key range, runs the user's statement and moves the cursor, all or nothing. The
 * cursor moves only from `progress.cursor`, the value read before, so two runners can never both apply a batch, and a
 * crash at any point leaves either the whole batch with its cursor or nothing of it.
 *
 * The statement is bounded by `batchStatementTimeoutMs` where the client can arm it before the call (node-postgres),
 * and by the Data API's 45 s call limit on Aurora (`QueryOptions.statementTimeoutMs`); `lockTimeoutMs` bounds every
 * lock wait inside it.
 */
export async function runBatch(
  ctx: RunContext,
  step: Migration,
  source: BatchSource,
  progress: ProgressRow,
  batchSize: number,
): Promise<BatchOutcome> {
  let batch: {
    ran: boolean;
    batch_rows: number | string;
    batch_keys: number;
    cursor_after: string | null;
    last_of_pass: boolean;
    database_ms: number;
  };
  const started = performance.now();
  try {
    // Every argument cast: the Data API sends strings as varchar, integers as bigint and NULL untyped, and a function
    // is found by its argument types. The function is named on the first line, which is what a report shows.
    const result = await ctx.client.query<typeof batch>(
      `SELECT ran, batch_rows, batch_keys, cursor_after, last_of_pass, database_ms FROM ${STATE_SCHEMA}.run_batch(
         CAST(:owner AS text), CAST(:ttl AS integer), CAST(:lock_ms AS integer), CAST(:step AS text),
         CAST(:checksum AS text), CAST(:previous AS text), CAST(:pass AS integer), CAST(:batch_size AS integer),
         CAST(:range_sql AS text), CAST(:multi_key AS boolean), CAST(:statement AS text))`,
      {
        owner: ctx.runId,
        ttl: ctx.settings.leaseTtlSeconds,
        lock_ms: ctx.settings.lockTimeoutMs,
        step: step.id,
        checksum: step.checksum,
        previous: progress.cursor ?? null,
        pass: progress.pass,
        batch_size: batchSize,
        range_sql: source.rangeSql(progress.cursor) ?? null,
        multi_key: source.multiKey,
        statement: source.statement,
      },
      { statementTimeoutMs: ctx.settings.batchStatementTimeoutMs },
    );
    batch = result.rows[0]!;
  } catch (error) {
    throw await batchError(ctx, step, error);
  }
  const outsideDatabaseMs = Math.max(0, performance.now() - started - Number(batch.database_ms));
  if (!batch.ran) return { ran: false, rows: 0, passEnded: true, progress, outsideDatabaseMs };
  const rows = Number(batch.batch_rows);
  const keys = Number(batch.batch_keys);
  return {
    ran: true,
    rows,
    passEnded: batch.last_of_pass || source.endsPass(rows),
    outsideDatabaseMs,
    progress: {
      ...progress,
      cursor: batch.cursor_after ?? undefined,
      rowsDone: progress.rowsDone + rows,
      passRows: progress.passRows + rows,
      keysScanned: progress.keysScanned + keys,
      batches: progress.batches + 1,
    },
  };
}

/** The engine's own conditions the batch function raises, by SQLSTATE; anything else is the step's (`failStep`). */
async function batchError(ctx: RunContext, step: Migration, error: unknown): Promise<unknown> {
  if (error instanceof SqlError && error.sqlState === BATCH_PROGRESS_MOVED) {
    return new StepFailedError(step.id, '', undefined, 'its migrate progress was changed by another run during a batch', {
      cause: error,
      transactional: true,
    });
  }
  return leaseError(ctx, error);
}
