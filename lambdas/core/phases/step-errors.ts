import type { Statement, Step } from '../catalog/step.ts';
import { EmcError, LeaseBusyError, LeaseLostError, LockTimeoutError, StepFailedError } from '../errors.ts';
import { LOCK_NOT_AVAILABLE, SqlError } from '../sql/sql-client.ts';
import { finishHistory, recordHistory } from '../state/history.ts';
import { leased, type RunContext } from './run-context.ts';

/** SQLSTATE 40P01: deadlock_detected. Like a lock timeout, the same statement may succeed when tried again. */
const DEADLOCK_DETECTED = '40P01';

/**
 * Turns what a step threw into the engine's typed error and records the failure in history (after the rollback,
 * so only the history row remains). Errors of the engine itself (lease lost, ...) pass through unchanged; so does
 * a dropped connection, after which nothing can be recorded. `runningHistoryId` is the `running` row a step
 * outside a transaction started with: it is finished as failed instead of a new row being written.
 */
export async function failStep(
  ctx: RunContext,
  step: Step,
  startedAt: Date,
  statement: Statement | undefined,
  error: unknown,
  runningHistoryId?: number,
): Promise<Error> {
  const typed = toStepError(step, statement, error);
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

export function toStepError(step: Step, statement: Statement | undefined, error: unknown): Error {
  if (error instanceof EmcError) return error;
  if (error instanceof SqlError) {
    const where = statement ? ` (${step.file}, statement at line ${statement.line})` : '';
    if (error.sqlState === LOCK_NOT_AVAILABLE || error.sqlState === DEADLOCK_DETECTED) {
      return new LockTimeoutError(step.id, `${error.message}${where}`, { cause: error });
    }
    return new StepFailedError(step.id, statement?.sql ?? '', error.sqlState, `${withoutRowData(error)}${where}`, {
      cause: error,
      transactional: step.transactional,
    });
  }
  return error instanceof Error ? error : new Error(String(error));
}

/**
 * PostgreSQL's data exceptions (SQLSTATE class 22) quote the offending value, e.g. `invalid input syntax for type
 * integer: "<a row's name>"`: row data, which must not reach the logs, the execution history or its Cause. The value
 * is withheld; the SQLSTATE, the step, the file and the line still say what failed.
 */
export function withoutRowData(error: SqlError): string {
  if (!error.sqlState?.startsWith('22')) return error.message;
  return error.message.replace(/"(?:[^"]|"")*"/g, '"…"').replace(/: 0x[0-9a-f ]+$/i, ': 0x…');
}
