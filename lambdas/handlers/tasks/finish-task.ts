import { finishUpgrade } from '../../core/workflow/run-summary.ts';
import { TASK_EVENTS, type RunSummary } from '../../core/workflow/task-contract.ts';
import type { SqlDependency } from '../commons/dependencies.ts';
import { phaseTask } from '../commons/task.ts';

/** "Release lease and summarise": the run's summary, the execution's output. */
export function createFinishTask(deps: SqlDependency): (event: unknown) => Promise<RunSummary> {
  return phaseTask('finish', TASK_EVENTS.finish, async ({ plan }) => finishUpgrade(await deps.sql(), plan));
}
