import { TASK_EVENTS, type UpgradePlan } from '../../core/workflow/task-contract.ts';
import { startUpgrade } from '../../core/workflow/upgrade-plan.ts';
import type { StartDependencies } from '../commons/dependencies.ts';
import { logger } from '../commons/logger.ts';
import { phaseTask } from '../commons/task.ts';

/** "Start upgrade": validates the input and the catalog against the database, takes the lease, returns the plan. */
export function createStartTask(deps: StartDependencies): (event: unknown) => Promise<UpgradePlan> {
  return phaseTask('start', TASK_EVENTS.start, async ({ executionArn, input }) => {
    logger.appendKeys({ executionArn });
    const plan = await startUpgrade(await deps.sql(), await deps.catalog(), {
      runId: executionArn,
      input,
      defaults: deps.settingsDefaults,
      drain: { source: deps.drainSource },
    });
    logger.info('upgrade planned', { target: plan.target, version: plan.versionBefore, pending: plan.pending });
    return plan;
  });
}
