import type { Statement } from '../catalog/step.ts';
import type { Step } from '../steps/step-kind.ts';
import { EmcError, LeaseBusyError, LeaseLostError, LockTimeoutError, StepFailedError, TransactionConflictError } from '../errors.ts';
import { LOCK_NOT_AVAILABLE, SqlError } from '../sql/sql-client.ts';
import { finishHistory, recordHistory } from '../state/history.ts';
import { leased, type RunContext } from './run-context.ts';

/**
 * SQLSTATE 40001 serialization_failure and 40P01 deadlock_detected: the database rolled the step's transaction back,
 * and the same step may succeed when tried again. Classified as the Data API client classifies them.
 */
const TRANSACTION_CONFLICTS = new Set(['40001', '40P01']);

/**
 * Turns what a step threw into the engine's typed error and records the failure in history (after the rollback,
 * so only the history row remains). Errors of the engine itself (lease lost, ...) pass through unchanged; so does
 * a dropped connection, after which nothing can be recorded. `runningHistoryId` is the `running` row a step
 * outside a transaction started with: it is finished as failed instead of a new row being written. `transactional`
 * is the step kind's: whether the failure left none of the step's writes behind (the error's next action says so).
 */
export async function failStep(
  ctx: RunContext,
  step: Step,
  transactional: boolean,
  startedAt: Date,
  statement: Statement | undefined,
  error: unknown,
  runningHistoryId?: number,
): Promise<Error> {
  const typed = toStepError(step, transactional, statement, error);
  ctx.onEvent?.({ type: 'step-failed', stepId: step.id, error: typed.message });
  // A run without the lease must not write, and the step did not run: no history row. Likewise when the lease row
  // was locked: the lease could not be checked, so it cannot be checked for this row either.
  if (typed instanceof LeaseLostError || typed instanceof LeaseBusyError) return typed;
  try {
    // Like every engine write, under the lease: a run whose lease was taken over meanwhile leaves no row.
    await leased(ctx, `recording the failure of ${step.id}`, (tx) =>
      runningHistoryId === undefined
        ? recordHistory(tx, { runId: ctx.runId, step, startedAt, outcome: 'failed', error: typed.message })
        : finishHistory(tx, runningHistoryId, 'failed', typed.message),
    );
  } catch {
    // The database is unreachable, or the lease is gone: the typed error still tells the caller what happened.
  }
  return typed;
}

export function toStepError(step: Step, transactional: boolean, statement: Statement | undefined, error: unknown): Error {
  if (error instanceof EmcError) return error;
  if (error instanceof SqlError) {
    const where = statement ? ` (${step.file}, statement at line ${statement.line})` : '';
    const place = statement ? { file: step.file, line: statement.line } : { file: step.file };
    if (error.sqlState === LOCK_NOT_AVAILABLE) {
      return new LockTimeoutError(step.id, `${error.message}${where}`, { cause: error, place });
    }
    if (error.sqlState !== undefined && TRANSACTION_CONFLICTS.has(error.sqlState)) {
      return new TransactionConflictError(error.sqlState, `Step ${step.id}: ${error.message}${where}`, { cause: error, stepId: step.id, place });
    }
    return new StepFailedError(step.id, statement?.sql ?? '', error.sqlState, `${error.message}${where}`, {
      cause: error,
      transactional,
      place,
    });
  }
  return error instanceof Error ? error : new Error(String(error));
}
