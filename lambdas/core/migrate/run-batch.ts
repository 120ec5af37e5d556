import type { Migration } from '../steps/step-kind.ts';
import { StepFailedError } from '../errors.ts';
import type { RunContext } from '../phases/run-context.ts';
import type { ProgressRow } from '../state/migrate-progress.ts';
import { renewLease } from '../state/lease.ts';
import { STATE_SCHEMA } from '../state/schema.ts';
import type { BatchSource } from './batch-source.ts';

/**
 * One batch, one transaction: renew the lease, plan the range, run the user's statement, and move the cursor.
 * The cursor update is guarded by the cursor read before the batch, so two runners can never both apply it.
 */
export async function runBatch(
  ctx: RunContext,
  step: Migration,
  source: BatchSource,
  progress: ProgressRow,
  batchSize: number,
): Promise<{ ran: boolean; rows: number; passEnded: boolean; progress: ProgressRow }> {
  return ctx.client.transaction(async (tx) => {
    await renewLease(tx, ctx.runId, ctx.settings.leaseTtlSeconds, {
      lockTimeoutMs: ctx.settings.lockTimeoutMs,
      statementTimeoutMs: ctx.settings.batchStatementTimeoutMs,
      idleInTransactionTimeoutMs: ctx.settings.idleInTransactionTimeoutMs,
    });
    const planned = await source.next(tx, progress.cursor, batchSize);
    if (!planned) return { ran: false, rows: 0, passEnded: true, progress };
    const result = await tx.query(source.statement, planned.params);
    const moved = await tx.query(
      `UPDATE ${STATE_SCHEMA}.migrate_progress
       SET cursor = :cursor, rows_done = rows_done + :rows, pass_rows = pass_rows + :rows, keys_scanned = keys_scanned + :keys,
           batches = batches + 1, updated_at = now()
       WHERE step_id = :step AND cursor IS NOT DISTINCT FROM :previous AND pass = :pass AND checksum = :checksum`,
      {
        step: step.id,
        checksum: step.checksum,
        cursor: planned.cursorAfter ?? null,
        rows: result.rowCount,
        keys: planned.keys,
        previous: progress.cursor ?? null,
        pass: progress.pass,
      },
    );
    if (moved.rowCount !== 1) {
      throw new StepFailedError(step.id, '', undefined, 'its migrate progress was changed by another run during a batch', {
        transactional: true,
      });
    }
    return {
      ran: true,
      rows: result.rowCount,
      passEnded: planned.lastOfPass || source.endsPass(result.rowCount),
      progress: {
        ...progress,
        cursor: planned.cursorAfter,
        rowsDone: progress.rowsDone + result.rowCount,
        passRows: progress.passRows + result.rowCount,
        keysScanned: progress.keysScanned + planned.keys,
        batches: progress.batches + 1,
      },
    };
  });
}
