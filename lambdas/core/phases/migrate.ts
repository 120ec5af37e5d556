import type { Catalog, Step } from '../catalog/step.ts';
import { MigrateRunawayError, PendingRowsRemainError, PhaseGateError, StepFailedError } from '../errors.ts';
import { describeStrategy, keysetSource, repeatUntilZeroSource, type BatchSource } from '../migrate/batch-source.ts';
import { runBatch } from '../migrate/run-batch.ts';
import { STATE_SCHEMA, ensureStateSchema } from '../state/schema.ts';
import { isApplied, readProgress, readState, recordApplied, type MigrateProgress } from '../state/database-state.ts';
import { formatVersion } from '../state/composite-version.ts';
import { recordHistory } from '../state/history.ts';
import { engineBounds } from '../state/engine-transaction.ts';
import { inspect, partlyRunChanged, refuseChangedMigrateSteps, type Inspection } from './inspect.ts';
import { pendingRows } from './pending-query.ts';
import { leased, reading, type RunContext } from './run-context.ts';
import { failStep } from './step-errors.ts';

/**
 * A step whose pending query still finds rows after this many passes is stuck, not slow. Before pass `n + 1` the step
 * waits `n × lockTimeoutMs`: rows the application holds locked (skipped by a SKIP LOCKED statement, or by a keyset
 * pass that went past them) get the same patience, growing, that a batch gives a lock. At most `MAX_PASS_PAUSE_MS`,
 * which the call's 60 s margin before the function's timeout covers (see `settingsProblems`).
 */
const MAX_PASSES = 4;
const MAX_PASS_PAUSE_MS = 30_000;

export interface MigrateStepProgress {
  readonly stepId: string;
  readonly rowsDone: number;
  /** Rows still to migrate: the step's pending query, or an estimate from table statistics; null when unknown. */
  readonly remaining: number | null;
  readonly cursor: string | null;
  readonly batches: number;
  readonly finished: boolean;
}

export interface MigrateResult {
  readonly phase: 'migrate';
  /** True when every migrate step up to the target is finished: the state machine stops looping. */
  readonly finished: boolean;
  /** Rows changed by this call. */
  readonly rowsThisCall: number;
  readonly batchesThisCall: number;
  readonly durationMs: number;
  readonly steps: readonly MigrateStepProgress[];
  /** Steps finished by this call. */
  readonly stepsFinished: readonly string[];
  readonly version: string;
}

export interface MigrateOptions {
  /** Partly-run steps whose file changed, to run again from their first key (the execution input's `restartSteps`). */
  readonly restartSteps?: readonly string[];
}

/**
 * Runs migrate batches for at most `settings.migrateBudgetMs`, step after step in catalog order, and reports how
 * far it got. Each batch is one transaction holding the batch's writes AND its progress row, so a crash at any
 * point neither loses nor repeats a batch. Call again until `finished`.
 */

export async function migrate(ctx: RunContext, catalog: Catalog, target?: string, options: MigrateOptions = {}): Promise<MigrateResult> {
  const started = Date.now();
  await ensureStateSchema(ctx.client, engineBounds(ctx.settings));
  const restart = options.restartSteps ?? [];
  const inspection = await reading(ctx, 'reading the upgrade state before migrate', (tx) => inspect(tx, catalog, target));
  refuseChangedMigrateSteps(catalog, inspection, restart);
  if (inspection.pending.expand.length > 0) {
    throw new PhaseGateError('migrate', [
      `expand steps are not applied yet: ${inspection.pending.expand.map((s) => s.id).join(', ')}`,
    ]);
  }
  // Every keyset to walk is checked against the catalog before anything is written (KeysetKeyError).
  const sources = new Map<string, BatchSource>();
  for (const step of inspection.pending.migrate) sources.set(step.id, await batchSource(ctx, step));
  // Before the first write (progress rows, reopened steps): a run without the lease must change nothing.
  await leased(ctx, 'checking the lease before migrate', async () => {});
  await restartChangedSteps(ctx, catalog, inspection, restart);
  const reopened = await reopenedSteps(ctx, catalog, inspection);
  for (const step of reopened) sources.set(step.id, await batchSource(ctx, step));
  const steps = [...reopened, ...inspection.pending.migrate];
  const deadline = started + ctx.settings.migrateBudgetMs;
  let rowsThisCall = 0;
  let batchesThisCall = 0;
  const stepsFinished: string[] = [];
  const progress: MigrateStepProgress[] = [];
  // Steps run strictly in catalog order: a step starts only once every step before it has finished. Otherwise a call
  // whose budget ran out between two batches of one step could go on to finish (and record as applied) a later step,
  // and the order check would then refuse every later run of the upgrade.
  let earlierUnfinished = false;
  for (const step of steps) {
    // However long the checks before took, every call runs at least one batch: a call that made no progress would
    // let the state machine loop forever.
    const mustProgress = batchesThisCall === 0;
    const outcome = !earlierUnfinished && (Date.now() < deadline || mustProgress)
      ? await migrateStep(ctx, step, sources.get(step.id)!, deadline, mustProgress)
      : { rows: 0, batches: 0, finished: false };
    if (!outcome.finished) earlierUnfinished = true;
    rowsThisCall += outcome.rows;
    batchesThisCall += outcome.batches;
    if (outcome.finished) stepsFinished.push(step.id);
    progress.push(await describeProgress(ctx, step, sources.get(step.id)!, outcome.finished));
  }
  return {
    phase: 'migrate',
    finished: progress.every((p) => p.finished),
    rowsThisCall,
    batchesThisCall,
    durationMs: Date.now() - started,
    steps: progress,
    stepsFinished,
    version: inspection.versionText,
  };
}

/**
 * Finished migrate steps of releases not yet contracted whose pending query finds rows again (the old release
 * wrote them after the step finished, with no trigger to carry them over). They get another pass, so that
 * contract's gate can open instead of dropping those rows' old columns.
 */
async function reopenedSteps(ctx: RunContext, catalog: Catalog, inspection: Inspection): Promise<Step[]> {
  const releasesToContract = new Set(inspection.pending.contract.map((s) => s.release));
  const reopened: Step[] = [];
  for (const step of catalog.steps) {
    if (step.phase !== 'migrate' || !releasesToContract.has(step.release) || inspection.pending.migrate.includes(step)) {
      continue;
    }
    const pending = await reading(ctx, `counting the rows pending for ${step.id}`, (tx) => pendingRows(tx, step));
    if (pending === undefined || pending === 0) continue;
    await leased(ctx, `reopening ${step.id}`, (tx) =>
      tx.query(
        `UPDATE ${STATE_SCHEMA}.migrate_progress SET finished = false, cursor = NULL, pass = 1, pass_rows = 0, updated_at = now()
         WHERE step_id = :step`,
        { step: step.id },
      ),
    );
    ctx.onEvent?.({ type: 'migrate-pass-restarted', stepId: step.id, pending, pass: 1 });
    reopened.push(step);
  }
  return reopened;
}

function batchSource(ctx: RunContext, step: Step): Promise<BatchSource> {
  return reading(ctx, `describing the batches of ${step.id}`, (tx) =>
    step.migration!.strategy.kind === 'keyset' ? keysetSource(tx, step) : repeatUntilZeroSource(tx, step),
  );
}

/**
 * The operator's decision (`restartSteps`) for a partly-run step whose file changed: its progress starts again from
 * the first key with the new file, and the decision is recorded in history, in one transaction. Only progress still
 * carrying the old checksum is reset, so the later calls of the same execution leave the new progress alone.
 */
async function restartChangedSteps(ctx: RunContext, catalog: Catalog, inspection: Inspection, ids: readonly string[]): Promise<void> {
  for (const change of partlyRunChanged(catalog, inspection.state).filter((c) => ids.includes(c.stepId))) {
    const step = catalog.steps.find((s) => s.id === change.stepId)!;
    await leased(ctx, `restarting ${step.id} from its first key`, async (tx) => {
      const reset = await tx.query(
        `UPDATE ${STATE_SCHEMA}.migrate_progress
         SET cursor = NULL, pass = 1, rows_done = 0, keys_scanned = 0, batches = 0, pass_rows = 0,
             checksum = :checksum, strategy = :strategy, started_at = now(), updated_at = now()
         WHERE step_id = :step AND checksum IS NOT DISTINCT FROM :previous AND batches = :batches`,
        {
          step: step.id,
          checksum: step.checksum,
          strategy: describeStrategy(step),
          previous: change.progressChecksum ?? null,
          batches: change.batches,
        },
      );
      if (reset.rowCount !== 1) {
        throw new StepFailedError(step.id, '', undefined, 'its migrate progress was changed by another run while it was restarted', {
          transactional: true,
        });
      }
      await recordHistory(tx, {
        runId: ctx.runId,
        step,
        startedAt: new Date(),
        rowsAffected: 0,
        outcome: 'restarted',
        error: `restarted from its first key (restartSteps): ${change.rowsDone} rows in ${change.batches} batches had run with ${change.progressChecksum ?? 'an unrecorded checksum'}`,
      });
    });
    ctx.onEvent?.({ type: 'migrate-step-restarted', stepId: step.id, rowsDone: change.rowsDone, batches: change.batches });
  }
}

async function migrateStep(
  ctx: RunContext,
  step: Step,
  source: BatchSource,
  deadline: number,
  mustProgress: boolean,
): Promise<{ rows: number; batches: number; finished: boolean }> {
  const startedAt = new Date();
  ctx.onEvent?.({ type: 'step-started', stepId: step.id, phase: step.phase });
  const migration = step.migration!;
  const batchSize = migration.batchSize ?? ctx.settings.batchSize;
  let rows = 0;
  let batches = 0;
  try {
    // The file its batches run with, which the cursor update checks. A row takes this file's checksum while it has no
    // committed batch, or when it has none recorded: inspect refused every unapplied step whose batches ran with another
    // file or an unrecorded one (unless restartSteps reset it), so that is an applied step reopened by an earlier
    // release of the tool, whose file the drift check compared with the applied one.
    let progress = await leased(ctx, `starting ${step.id}`, async (tx) => {
      await tx.query(
        `INSERT INTO ${STATE_SCHEMA}.migrate_progress AS p (step_id, checksum, strategy) VALUES (:step, :checksum, :strategy)
         ON CONFLICT (step_id) DO UPDATE SET checksum = excluded.checksum, strategy = excluded.strategy
         WHERE (p.batches = 0 OR p.checksum IS NULL) AND p.checksum IS DISTINCT FROM excluded.checksum`,
        { step: step.id, checksum: step.checksum, strategy: describeStrategy(step) },
      );
      return (await readProgress(tx, step.id))!;
    });
    let lastBatchMs = 0;
    while ((mustProgress && batches === 0) || Date.now() + lastBatchMs < deadline) {
      const batchStart = Date.now();
      const batch = await runBatch(ctx, step, source, progress, batchSize);
      lastBatchMs = Date.now() - batchStart;
      rows += batch.rows;
      batches += batch.ran ? 1 : 0;
      progress = batch.progress;
      if (batch.ran) {
        ctx.onEvent?.({
          type: 'batch',
          stepId: step.id,
          rows: batch.rows,
          rowsDone: progress.rowsDone,
          cursor: progress.cursor,
          durationMs: lastBatchMs,
        });
      }
      if (batch.passEnded) {
        if (await finishOrRestartPass(ctx, step, progress, rows, startedAt)) return { rows, batches, finished: true };
        progress = (await reading(ctx, `reading the progress of ${step.id}`, (tx) => readProgress(tx, step.id)))!;
      } else {
        const runaway = source.runaway(progress.passRows, batchSize);
        if (runaway) throw new MigrateRunawayError(step.id, `${runaway} (${step.file})`);
      }
      if (ctx.settings.batchPauseMs > 0) {
        // No time left for the pause: stop here rather than run the next batches without one.
        if (Date.now() + ctx.settings.batchPauseMs >= deadline) break;
        await new Promise((resolve) => setTimeout(resolve, ctx.settings.batchPauseMs));
      }
    }
    // A call whose budget ran out before this step's first batch did no work on it: nothing to record.
    if (batches > 0) {
      await leased(ctx, `recording the progress of ${step.id}`, (tx) =>
        recordHistory(tx, { runId: ctx.runId, step, startedAt, rowsAffected: rows, outcome: 'continued' }),
      );
    }
    return { rows, batches, finished: false };
  } catch (error) {
    throw await failStep(ctx, step, startedAt, error instanceof StepFailedError ? undefined : step.statements[0], error);
  }
}

/**
 * At the end of a pass: if the step's pending query finds no rows (or it has none), the step is finished and
 * recorded as applied in one transaction. Otherwise rows are left that the pass did not change: written by the old
 * release behind a keyset cursor, or locked by the application when a batch came by. Another pass starts, after a
 * growing pause, a bounded number of times.
 */
async function finishOrRestartPass(
  ctx: RunContext,
  step: Step,
  progress: MigrateProgress,
  rowsThisCall: number,
  startedAt: Date,
): Promise<boolean> {
  const pending = await reading(ctx, `counting the rows pending for ${step.id}`, (tx) => pendingRows(tx, step));
  if (pending !== undefined && pending > 0) {
    const last = progress.pass >= MAX_PASSES;
    const pauseMs = Math.min(progress.pass * ctx.settings.lockTimeoutMs, MAX_PASS_PAUSE_MS);
    if (!last) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    // After the last pass the step fails, and the next run starts a new series of passes from the first key.
    await leased(ctx, `restarting ${step.id} for another pass`, (tx) =>
      tx.query(
        `UPDATE ${STATE_SCHEMA}.migrate_progress SET cursor = NULL, pass = :pass, pass_rows = 0, updated_at = now() WHERE step_id = :step`,
        { step: step.id, pass: last ? 1 : progress.pass + 1 },
      ),
    );
    if (last) throw new PendingRowsRemainError(step.id, step.file, pending, progress.pass);
    ctx.onEvent?.({ type: 'migrate-pass-restarted', stepId: step.id, pending, pass: progress.pass + 1 });
    return false;
  }
  await leased(ctx, `recording ${step.id} as applied`, async (tx) => {
    await tx.query(`UPDATE ${STATE_SCHEMA}.migrate_progress SET finished = true, updated_at = now() WHERE step_id = :step`, {
      step: step.id,
    });
    const version = (await isApplied(tx, step.id))
      ? (await readState(tx)).version
      : await recordApplied(tx, step, ctx.runId);
    await recordHistory(tx, { runId: ctx.runId, step, startedAt, rowsAffected: rowsThisCall, outcome: 'succeeded' });
    ctx.onEvent?.({ type: 'step-succeeded', stepId: step.id, durationMs: Date.now() - startedAt.getTime(), version: formatVersion(version) });
  });
  return true;
}

async function describeProgress(ctx: RunContext, step: Step, source: BatchSource, finished: boolean): Promise<MigrateStepProgress> {
  const { progress, remaining } = await reading(ctx, `reading the progress of ${step.id}`, async (tx) => {
    const progress = await readProgress(tx, step.id);
    let remaining: number | undefined = finished ? 0 : await pendingRows(tx, step);
    remaining ??= await source.estimateRemaining(tx, progress?.keysScanned ?? 0);
    return { progress, remaining };
  });
  return {
    stepId: step.id,
    rowsDone: progress?.rowsDone ?? 0,
    remaining: remaining ?? null,
    cursor: progress?.cursor ?? null,
    batches: progress?.batches ?? 0,
    finished,
  };
}
