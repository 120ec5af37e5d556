import { contract } from '../../core/phases/contract.ts';
import { TASK_EVENTS, type SchemaPhaseTaskResult } from '../../core/workflow/task-contract.ts';
import type { PhaseDependencies } from '../commons/dependencies.ts';
import { runContext } from '../commons/run-context.ts';
import { schemaPhaseResult } from '../commons/schema-phase-result.ts';
import { phaseTask } from '../commons/task.ts';

/** "Contract schema": applies the pending contract steps, once the drain gate confirmed the old release is gone. */
export function createContractTask(deps: PhaseDependencies): (event: unknown) => Promise<SchemaPhaseTaskResult> {
  return phaseTask('contract', TASK_EVENTS.contract, async ({ plan, drainConfirmed }) =>
    schemaPhaseResult(await contract(await runContext(deps, plan), await deps.catalog(), plan.target, { drainConfirmed })),
  );
}
