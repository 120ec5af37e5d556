import { expand } from '../../core/phases/expand.ts';
import { TASK_EVENTS, type SchemaPhaseTaskResult } from '../../core/workflow/task-contract.ts';
import type { PhaseDependencies } from '../commons/dependencies.ts';
import { runContext } from '../commons/run-context.ts';
import { schemaPhaseResult } from '../commons/schema-phase-result.ts';
import { phaseTask } from '../commons/task.ts';

/** "Expand schema": applies the pending expand steps. */
export function createExpandTask(deps: PhaseDependencies): (event: unknown) => Promise<SchemaPhaseTaskResult> {
  return phaseTask('expand', TASK_EVENTS.expand, async ({ plan }) =>
    schemaPhaseResult(await expand(await runContext(deps, plan), await deps.catalog(), plan.target)),
  );
}
