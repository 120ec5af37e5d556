import type { SqlClient } from '../sql/sql-client.ts';
import { formatVersion } from '../state/composite-version.ts';
import { readState } from '../state/database-state.ts';
import { DEFAULT_BOUNDS, readTransaction } from '../state/engine-transaction.ts';
import { releaseLease } from '../state/lease.ts';
import { CONTROL_STATE_NAMES, STATE_NAMES, WORKFLOW_TASKS, type WorkflowTask } from './state-names.ts';

/** What a Catch stores: the error name and the Cause (Lambda's JSON envelope in AWS, the plain message locally). */
export interface CaughtError {
  readonly Error: string;
  readonly Cause?: string;
}

export interface FailureReport {
  /** The Fail state's Error: the typed error name (StepFailedError, LeaseHeldError, ...). */
  readonly error: string;
  /** The Fail state's Cause: which state failed, why, the database version now, and what to do next. */
  readonly cause: string;
  readonly failedState: string;
  readonly version: string;
  readonly leaseReleased: boolean;
}

/** Where a Catch records an error: a Lambda task, or the start of the continuing execution. */
type FailureSource = WorkflowTask | 'continuation';
const FAILURE_SOURCES: readonly FailureSource[] = [...WORKFLOW_TASKS, 'continuation'];

const GENERIC_NEXT =
  'Next: run the upgrade again once the cause is fixed; every phase is safe to re-run and resumes where it stopped.';

/**
 * The failure path every Catch leads to: release the lease (if this run holds it) and describe the failure for the
 * on-call engineer. Never throws: a failure report that fails would hide the original error.
 */
export async function reportFailure(
  client: SqlClient | undefined,
  options: { runId: string; failedIn: Partial<Record<FailureSource, CaughtError>> },
): Promise<FailureReport> {
  const task = FAILURE_SOURCES.find((t) => options.failedIn[t] !== undefined) ?? 'plan';
  const caught = options.failedIn[task] ?? { Error: 'UnknownError', Cause: 'no error was recorded' };
  const message = causeMessage(caught.Cause);
  let leaseReleased = false;
  let version = 'unknown (the database could not be read)';
  if (client) {
    leaseReleased = await releaseLease(client, options.runId).catch(() => false);
    version = await readTransaction(client, DEFAULT_BOUNDS, 'reading the version after a failure', (tx) => readState(tx))
      .then((s) => formatVersion(s.version))
      .catch(() => version);
  }
  const failedState = task === 'continuation' ? CONTROL_STATE_NAMES.continueInNewExecution : STATE_NAMES[task];
  const next = /\nNext: /.test(message) ? '' : `\n${GENERIC_NEXT}`;
  return {
    error: caught.Error,
    cause: `"${failedState}" failed with ${caught.Error}: ${message}${next}\nDatabase version now: ${version}`,
    failedState,
    version,
    leaseReleased,
  };
}

/** Lambda's error envelope `{"errorType","errorMessage","trace"}` in AWS; the plain message locally. */
function causeMessage(cause: string | undefined): string {
  if (!cause) return '(no cause given)';
  try {
    const envelope = JSON.parse(cause) as { errorMessage?: unknown };
    if (typeof envelope.errorMessage === 'string') return envelope.errorMessage;
  } catch {
    // Not JSON: already the message.
  }
  return cause;
}
