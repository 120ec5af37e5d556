import { migrate } from '../../core/phases/migrate.ts';
import { reading } from '../../core/phases/run-context.ts';
import { readProgress, type ProgressRow } from '../../core/state/migrate-progress.ts';
import { TASK_EVENTS, type MigrateTaskResult } from '../../core/workflow/task-contract.ts';
import type { PhaseDependencies } from '../commons/dependencies.ts';
import { runContext } from '../commons/run-context.ts';
import { phaseTask } from '../commons/task.ts';

/** "Migrate data": runs migrate batches for one time budget; the state machine calls it until it is finished. */
export function createMigrateTask(deps: PhaseDependencies): (event: unknown) => Promise<MigrateTaskResult> {
  return phaseTask('migrate', TASK_EVENTS.migrate, async ({ plan, callsBefore }) => {
    const ctx = await runContext(deps, plan);
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
  });
}
