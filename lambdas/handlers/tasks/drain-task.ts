import { pollDrainGate } from '../../core/drain/drain-gate.ts';
import { leased } from '../../core/phases/run-context.ts';
import { recordOldRelease } from '../../core/workflow/old-release.ts';
import {
  isOldReleaseRequest,
  TASK_EVENTS,
  type DrainTaskResult,
  type OldReleaseTaskResult,
} from '../../core/workflow/task-contract.ts';
import type { DrainDependencies } from '../commons/dependencies.ts';
import { logger } from '../commons/logger.ts';
import { runContext } from '../commons/run-context.ts';
import { phaseTask } from '../commons/task.ts';

/**
 * The drain task's function, the only one that talks to ECS. It answers two requests: "Record old release" (before
 * expand, the old release's task definitions; its event has `request`, see isOldReleaseRequest) and "Check old
 * release drained" (one poll of the drain gate).
 */
export function createDrainTask(deps: DrainDependencies): (event: unknown) => Promise<DrainTaskResult | OldReleaseTaskResult> {
  const record = phaseTask('recordOldRelease', TASK_EVENTS.recordOldRelease, async ({ plan }) => {
    logger.appendKeys({ executionArn: plan.runId });
    const recorded = await recordOldRelease(deps.ecs, deps.drainSource, plan);
    logger.info('old release recorded', { oldTaskDefinitions: recorded });
    return recorded;
  });

  const poll = phaseTask('drain', TASK_EVENTS.drain, async ({ plan, previous }) => {
    const ctx = await runContext(deps, plan);
    // A long wait must not let the lease expire under this run.
    await leased(ctx, 'renewing the lease while the old release drains', async () => {});
    const state = await pollDrainGate(
      { sql: ctx.client, ecs: deps.drainSource.kind === 'ecs' ? deps.ecs() : undefined },
      {
        source: deps.drainSource,
        timeoutSeconds: deps.drainTimeoutSeconds,
        requestedTaskDefinitions: plan.newTaskDefinitions,
        sessionPattern: plan.sessionPattern,
        oldTaskDefinitions: plan.oldTaskDefinitions,
        // The state machine starts the loop with `DRAIN_LOOP_START`: no start time yet means this is the first poll.
        previous: previous?.startedAt
          ? { startedAt: previous.startedAt, polls: previous.polls ?? 0, newTaskDefinitions: previous.newTaskDefinitions ?? {} }
          : undefined,
      },
    );
    logger.info(state.drained ? 'old release drained' : 'old release still running', { summary: state.summary });
    return { ...state, newTaskDefinitions: { ...state.newTaskDefinitions } };
  });

  return (event) => (isOldReleaseRequest(event) ? record(event) : poll(event));
}
