import type { EngineEvent, RunContext } from '../../core/phases/run-context.ts';
import type { UpgradePlan } from '../../core/workflow/task-contract.ts';
import type { SqlDependency } from './dependencies.ts';
import { logger } from './logger.ts';

/** The engine's run context of a task after "Start upgrade", from its plan: the run's SQL client, id and settings, events to the log. */
export async function runContext(deps: SqlDependency, plan: UpgradePlan): Promise<RunContext> {
  logger.appendKeys({ executionArn: plan.runId });
  return { client: await deps.sql(), runId: plan.runId, settings: plan.settings, onEvent: logEngineEvent };
}

function logEngineEvent(event: EngineEvent): void {
  logger.appendKeys({ stepId: event.stepId });
  logger.info(event.type, { ...event, ...('cursor' in event ? { cursor: undefined } : {}) });
}
