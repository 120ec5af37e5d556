import type { SqlClient } from '../sql/sql-client.ts';
import { formatVersion } from '../state/composite-version.ts';
import { readState } from '../state/database-state.ts';
import { DEFAULT_BOUNDS, readTransaction } from '../state/engine-transaction.ts';
import { releaseLease } from '../state/lease.ts';
import { CONTROL_STATE_NAMES, TASK_STATE_NAMES } from './state-names.ts';
import {
  errorMessageOf,
  FAILURE_SOURCES,
  taskFailureOf,
  type CaughtError,
  type FailureReport,
  type FailureSource,
} from './task-contract.ts';

export type { FailureReport } from './task-contract.ts';

const GENERIC_NEXT =
  'Run the upgrade again once the cause is fixed; every phase is safe to re-run and resumes where it stopped.';

/**
 * The failure path every Catch leads to: release the lease (if this run holds it), read the database version, and
 * report the failure twice: the task's structured failure record (for the CLI) and a sentence for the on-call
 * engineer (the Fail state's Cause). Never throws: a failure report that fails would hide the original error.
 */
export async function reportFailure(
  client: SqlClient | undefined,
  options: { runId: string; failedIn: Partial<Record<FailureSource, CaughtError>> },
): Promise<FailureReport> {
  const source = FAILURE_SOURCES.find((t) => options.failedIn[t] !== undefined) ?? 'start';
  const caught = options.failedIn[source] ?? { Error: 'UnknownError', Cause: 'no error was recorded' };
  const record = taskFailureOf(caught.Cause);
  let leaseReleased = false;
  let version = 'unknown (the database could not be read)';
  if (client) {
    leaseReleased = await releaseLease(client, options.runId).catch(() => false);
    version = await readTransaction(client, DEFAULT_BOUNDS, 'reading the version after a failure', (tx) => readState(tx))
      .then((s) => formatVersion(s.version))
      .catch(() => version);
  }
  const failedState = source === 'continuation' ? CONTROL_STATE_NAMES.continueInNewExecution : TASK_STATE_NAMES[source];
  const message = record?.message ?? errorMessageOf(caught.Cause) ?? caught.Cause ?? '(no cause given)';
  return {
    error: caught.Error,
    cause: `"${failedState}" failed with ${caught.Error}: ${message}\nNext: ${record?.nextAction ?? GENERIC_NEXT}\nDatabase version now: ${version}`,
    failedState,
    version,
    leaseReleased,
    record,
  };
}
