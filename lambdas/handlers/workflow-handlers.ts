import '../core/validation.ts';
import { pollDrainGate } from '../core/drain/drain-gate.ts';
import { contract } from '../core/phases/contract.ts';
import { expand } from '../core/phases/expand.ts';
import { migrate } from '../core/phases/migrate.ts';
import { leased, reading, type EngineEvent, type RunContext } from '../core/phases/run-context.ts';
import type { StepRun } from '../core/steps/run-steps.ts';
import { readProgress, type ProgressRow } from '../core/state/migrate-progress.ts';
import { reportFailure } from '../core/workflow/failure-report.ts';
import { finishUpgrade } from '../core/workflow/run-summary.ts';
import {
  TASK_EVENTS,
  type DrainTaskResult,
  type FailureReport,
  type MigrateTaskResult,
  type RunSummary,
  type SchemaPhaseTaskResult,
  type UpgradePlan,
} from '../core/workflow/task-contract.ts';
import { startUpgrade } from '../core/workflow/upgrade-plan.ts';
import type { HandlerDependencies } from './commons/dependencies.ts';
import { logger } from './commons/logger.ts';
import { parseEvent, phaseTask } from './commons/task.ts';

/**
 * The Lambda tasks of the state machine, as plain async functions of their event. Each is a thin adapter: parse
 * the event with the task contract, call the engine, return the contract's result for the execution history (no
 * row data). A failure leaves as a TaskFailedError carrying the structured failure record (commons/task.ts).
 */
export interface WorkflowHandlers {
  readonly plan: (event: unknown) => Promise<UpgradePlan>;
  readonly expand: (event: unknown) => Promise<SchemaPhaseTaskResult>;
  readonly migrate: (event: unknown) => Promise<MigrateTaskResult>;
  readonly drain: (event: unknown) => Promise<DrainTaskResult>;
  readonly contract: (event: unknown) => Promise<SchemaPhaseTaskResult>;
  readonly finish: (event: unknown) => Promise<RunSummary>;
  readonly recordFailure: (event: unknown) => Promise<FailureReport>;
}

export function createWorkflowHandlers(deps: HandlerDependencies): WorkflowHandlers {
  const context = async (plan: UpgradePlan): Promise<RunContext> => {
    logger.appendKeys({ executionArn: plan.runId });
    return {
      client: await deps.sql(),
      runId: plan.runId,
      settings: plan.settings,
      onEvent: logEngineEvent,
    };
  };

  return {
    plan: phaseTask('plan', TASK_EVENTS.plan, async ({ executionArn, input }) => {
      logger.appendKeys({ executionArn });
      const plan = await startUpgrade(await deps.sql(), await deps.catalog(), {
        runId: executionArn,
        input,
        defaults: deps.settingsDefaults,
        drain: { source: deps.drain.source, ecs: deps.ecs },
      });
      logger.info('upgrade planned', { target: plan.target, version: plan.versionBefore, pending: plan.pending });
      return plan;
    }),

    expand: phaseTask('expand', TASK_EVENTS.expand, async ({ plan }) => {
      const result = await expand(await context(plan), await deps.catalog(), plan.target);
      return schemaPhaseResult(result);
    }),

    migrate: phaseTask('migrate', TASK_EVENTS.migrate, async ({ plan, callsBefore }) => {
      const ctx = await context(plan);
      const result = await migrate(ctx, await deps.catalog(), plan.target, { restartSteps: plan.restartSteps });
      // Progress over the whole run: steps this run finished in earlier calls count as done.
      const earlier = plan.pending.migrate.filter((id) => !result.steps.some((s) => s.stepId === id));
      const finishedEarlier = await reading(ctx, 'reading the progress of earlier steps', async (tx) => {
        const rows: (ProgressRow | undefined)[] = [];
        for (const id of earlier) rows.push(await readProgress(tx, id));
        return rows;
      });
      const rowsDoneEarlier = finishedEarlier.reduce((n, p) => n + (p?.rowsDone ?? 0), 0);
      return {
        finished: result.finished,
        calls: callsBefore + 1,
        rowsThisCall: result.rowsThisCall,
        batchesThisCall: result.batchesThisCall,
        durationMs: result.durationMs,
        stepsFinished: [...result.stepsFinished],
        // Cursors are key values, i.e. row data: they stay in the database and out of the execution history.
        steps: result.steps.map((s) => ({ stepId: s.stepId, rowsDone: s.rowsDone, remaining: s.remaining, batches: s.batches, finished: s.finished })),
        rowsDone: rowsDoneEarlier + result.steps.reduce((n, s) => n + s.rowsDone, 0),
        rowsRemaining: result.steps.some((s) => s.remaining === null)
          ? null
          : result.steps.reduce((n, s) => n + (s.remaining ?? 0), 0),
      };
    }),

    drain: phaseTask('drain', TASK_EVENTS.drain, async ({ plan, previous }) => {
      const ctx = await context(plan);
      // A long wait must not let the lease expire under this run.
      await leased(ctx, 'renewing the lease while the old release drains', async () => {});
      const state = await pollDrainGate(
        { sql: ctx.client, ecs: deps.drain.source.kind === 'ecs' ? deps.ecs() : undefined },
        {
          source: deps.drain.source,
          timeoutSeconds: deps.drain.timeoutSeconds,
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
    }),

    contract: phaseTask('contract', TASK_EVENTS.contract, async ({ plan, drainConfirmed }) => {
      const result = await contract(await context(plan), await deps.catalog(), plan.target, { drainConfirmed });
      return schemaPhaseResult(result);
    }),

    finish: phaseTask('finish', TASK_EVENTS.finish, async ({ plan }) => finishUpgrade(await deps.sql(), plan)),

    // The failure path never throws a failure record of its own: it reports the original error.
    recordFailure: async (raw) => {
      const { executionArn, failedIn } = parseEvent(TASK_EVENTS.recordFailure, raw);
      logger.appendKeys({ executionArn });
      const client = await deps.sql().catch(() => undefined);
      const report = await reportFailure(client, { runId: executionArn, failedIn });
      logger.error('upgrade failed', { failedState: report.failedState, error: report.error, version: report.version });
      return report;
    },
  };
}

function schemaPhaseResult(result: {
  phase: 'expand' | 'contract';
  stepsRun: readonly StepRun[];
  versionBefore: string;
  versionAfter: string;
}): SchemaPhaseTaskResult {
  return {
    phase: result.phase,
    stepsRun: result.stepsRun.map((s) => s.stepId),
    durationMs: result.stepsRun.reduce((n, s) => n + s.durationMs, 0),
    versionBefore: result.versionBefore,
    versionAfter: result.versionAfter,
  };
}

function logEngineEvent(event: EngineEvent): void {
  logger.appendKeys({ stepId: event.stepId });
  logger.info(event.type, { ...event, ...('cursor' in event ? { cursor: undefined } : {}) });
}
