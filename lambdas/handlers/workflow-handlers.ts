import * as z from 'zod/mini';
import '../core/validation.ts';
import { EmcError, InputError } from '../core/errors.ts';
import { pollDrainGate } from '../core/drain/drain-gate.ts';
import { contract } from '../core/phases/contract.ts';
import { expand } from '../core/phases/expand.ts';
import { migrate } from '../core/phases/migrate.ts';
import { leased, reading, type EngineEvent, type RunContext } from '../core/phases/run-context.ts';
import { resolveSettings } from '../core/settings.ts';
import { readProgress, type ProgressRow } from '../core/state/migrate-progress.ts';
import { reportFailure } from '../core/workflow/failure-report.ts';
import { finishUpgrade } from '../core/workflow/run-summary.ts';
import { STATE_NAMES, type WorkflowTask } from '../core/workflow/state-names.ts';
import { startUpgrade, type UpgradePlan } from '../core/workflow/upgrade-plan.ts';
import type { HandlerDependencies } from './commons/dependencies.ts';
import { logger } from './commons/logger.ts';

/**
 * The Lambda tasks of the state machine, as plain async functions of their event. Each is a thin adapter: parse
 * the event with zod, call the engine, return a small result for the execution history (no row data).
 *
 * Errors keep their class name (Step Functions Retry/Catch match on it) and their message gains the engine's
 * "Next:" advice, so the failed execution's Cause tells the on-call engineer what to do.
 */
export type WorkflowHandlers = Record<WorkflowTask | 'recordFailure', (event: unknown) => Promise<unknown>>;

const planSchema = z.looseObject({
  runId: z.string().check(z.minLength(1)),
  target: z.string().check(z.minLength(1)),
  settings: z.looseObject({ leaseTtlSeconds: z.number() }),
  startedAt: z.string(),
});
const withPlan = z.looseObject({ plan: planSchema });

export function createWorkflowHandlers(deps: HandlerDependencies): WorkflowHandlers {
  const context = async (plan: UpgradePlan): Promise<RunContext> => ({
    client: await deps.sql(),
    runId: plan.runId,
    // Defaults fill in settings added since the plan was made (an execution that outlived a deployment).
    settings: resolveSettings(plan.settings),
    onEvent: logEngineEvent,
  });
  const readPlan = (event: unknown): UpgradePlan => parseEvent(withPlan, event).plan as unknown as UpgradePlan;

  return {
    plan: task('plan', async (event) => {
      const { executionId, input } = parseEvent(z.looseObject({ executionId: z.string().check(z.minLength(1)), input: z.unknown() }), event);
      logger.appendKeys({ executionArn: executionId });
      const plan = await startUpgrade(await deps.sql(), await deps.catalog(), {
        runId: executionId,
        input,
        defaults: deps.settingsDefaults,
        drain: { source: deps.drain.source, ecs: deps.ecs },
      });
      logger.info('upgrade planned', { target: plan.target, version: plan.versionBefore, pending: plan.pending });
      return plan;
    }),

    expand: task('expand', async (event) => {
      const plan = readPlan(event);
      const result = await expand(await context(plan), await deps.catalog(), plan.target);
      return { ...result, stepsRun: result.stepsRun.map((s) => s.stepId), durationMs: sum(result.stepsRun) };
    }),

    migrate: task('migrate', async (event) => {
      const plan = readPlan(event);
      const { callsBefore } = parseEvent(z.looseObject({ callsBefore: z.number().check(z.int(), z.minimum(0)) }), event);
      const ctx = await context(plan);
      const result = await migrate(ctx, await deps.catalog(), plan.target, { restartSteps: plan.restartSteps ?? [] });
      // Progress over the whole run: steps this run finished in earlier calls count as done.
      const earlier = plan.pending.migrate.filter((id) => !result.steps.some((s) => s.stepId === id));
      const finishedEarlier = await reading(ctx, 'reading the progress of earlier steps', async (tx) => {
        const rows: (ProgressRow | undefined)[] = [];
        for (const id of earlier) rows.push(await readProgress(tx, id));
        return rows;
      });
      const rowsDoneEarlier = finishedEarlier.reduce((n, p) => n + (p?.rowsDone ?? 0), 0);
      // Cursors are key values, i.e. row data: they stay in the database and out of the execution history.
      return {
        finished: result.finished,
        // This execution's migrate calls so far: the state machine continues in a new execution after its limit.
        calls: callsBefore + 1,
        rowsThisCall: result.rowsThisCall,
        batchesThisCall: result.batchesThisCall,
        durationMs: result.durationMs,
        stepsFinished: result.stepsFinished,
        steps: result.steps.map(({ cursor: _cursor, ...progress }) => progress),
        rowsDone: rowsDoneEarlier + result.steps.reduce((n, s) => n + s.rowsDone, 0),
        rowsRemaining: result.steps.some((s) => s.remaining === null)
          ? null
          : result.steps.reduce((n, s) => n + (s.remaining ?? 0), 0),
      };
    }),

    drain: task('drain', async (event) => {
      const parsed = parseEvent(
        z.looseObject({
          plan: planSchema,
          previous: z.nullish(
            z.looseObject({
              startedAt: z.optional(z.string()),
              polls: z.optional(z.number()),
              newTaskDefinitions: z.optional(z.record(z.string(), z.string())),
            }),
          ),
        }),
        event,
      );
      const plan = parsed.plan as unknown as UpgradePlan;
      const ctx = await context(plan);
      const client = ctx.client;
      // A long wait must not let the lease expire under this run.
      await leased(ctx, 'renewing the lease while the old release drains', async () => {});
      const state = await pollDrainGate(
        { sql: client, ecs: deps.drain.source.kind === 'ecs' ? deps.ecs() : undefined },
        {
          source: deps.drain.source,
          timeoutSeconds: deps.drain.timeoutSeconds,
          requestedTaskDefinitions: plan.newTaskDefinitions ?? {},
          sessionPattern: plan.sessionPattern,
          oldTaskDefinitions: plan.oldTaskDefinitions,
          // The state machine starts the loop with `{ polls: 0 }`: no start time yet means this is the first poll.
          previous: parsed.previous?.startedAt
            ? {
                startedAt: parsed.previous.startedAt,
                polls: parsed.previous.polls ?? 0,
                newTaskDefinitions: parsed.previous.newTaskDefinitions ?? {},
              }
            : undefined,
        },
      );
      logger.info(state.drained ? 'old release drained' : 'old release still running', { summary: state.summary });
      return state;
    }),

    contract: task('contract', async (event) => {
      const parsed = parseEvent(z.looseObject({ plan: planSchema, drainConfirmed: z.boolean() }), event);
      const plan = parsed.plan as unknown as UpgradePlan;
      const result = await contract(await context(plan), await deps.catalog(), plan.target, {
        drainConfirmed: parsed.drainConfirmed,
      });
      return { ...result, stepsRun: result.stepsRun.map((s) => s.stepId), durationMs: sum(result.stepsRun) };
    }),

    finish: task('finish', async (event) => finishUpgrade(await deps.sql(), readPlan(event))),

    recordFailure: async (event) => {
      const { executionId, failedIn } = parseEvent(
        z.looseObject({ executionId: z.string(), failedIn: z.record(z.string(), z.looseObject({ Error: z.string(), Cause: z.optional(z.string()) })) }),
        event,
      );
      logger.appendKeys({ executionArn: executionId });
      const client = await deps.sql().catch(() => undefined);
      const report = await reportFailure(client, { runId: executionId, failedIn });
      logger.error('upgrade failed', { failedState: report.failedState, error: report.error, version: report.version });
      return report;
    },
  };
}

/** Wraps one task: logger keys, and the typed error's advice appended to its message. */
function task(name: WorkflowTask, work: (event: unknown) => Promise<unknown>): (event: unknown) => Promise<unknown> {
  return async (event) => {
    const runId = (event as { plan?: { runId?: unknown } } | null)?.plan?.runId;
    if (typeof runId === 'string') logger.appendKeys({ executionArn: runId });
    logger.appendKeys({ state: STATE_NAMES[name] });
    try {
      return await work(event);
    } catch (error) {
      if (error instanceof EmcError && !error.message.includes('\nNext: ')) {
        error.message = `${error.message}\nNext: ${error.nextAction}`;
      }
      logger.error('task failed', { errorName: (error as Error).name, error: (error as Error).message });
      throw error;
    } finally {
      logger.removeKeys(['stepId']);
    }
  };
}

/**
 * Parses a task's event. The state machine builds these events, so a malformed one means the definition and the
 * handlers disagree (or someone invoked the function by hand): an InputError naming the fields, never a raw zod error.
 */
function parseEvent<T>(schema: z.ZodMiniType<T>, event: unknown): T {
  const parsed = schema.safeParse(event);
  if (parsed.success) return parsed.data;
  const fields = parsed.error.issues.map((i) => `"${i.path.join('.') || '(event)'}": ${i.message}`);
  throw new InputError(`Malformed task event: ${fields.join('; ')}.`);
}

function logEngineEvent(event: EngineEvent): void {
  logger.appendKeys({ stepId: event.stepId });
  logger.info(event.type, { ...event, ...('cursor' in event ? { cursor: undefined } : {}) });
}

function sum(steps: readonly { durationMs: number }[]): number {
  return steps.reduce((n, s) => n + s.durationMs, 0);
}
