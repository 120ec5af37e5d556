import { reportFailure } from '../../core/workflow/failure-report.ts';
import { TASK_EVENTS, type FailureReport } from '../../core/workflow/task-contract.ts';
import type { SqlDependency } from '../commons/dependencies.ts';
import { logger } from '../commons/logger.ts';
import { parseEvent } from '../commons/task.ts';

/**
 * "Record failure": releases the lease and describes the failure. It never throws a failure record of its own: it
 * reports the original error, with or without a database.
 */
export function createRecordFailureTask(deps: SqlDependency): (event: unknown) => Promise<FailureReport> {
  return async (raw) => {
    const { executionArn, failedIn } = parseEvent(TASK_EVENTS.recordFailure, raw);
    logger.appendKeys({ executionArn });
    const client = await deps.sql().catch(() => undefined);
    const report = await reportFailure(client, { runId: executionArn, failedIn });
    logger.error('upgrade failed', { failedState: report.failedState, error: report.error, version: report.version });
    return report;
  };
}
