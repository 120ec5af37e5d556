import type { Catalog } from '../catalog/step.ts';
import { PhaseGateError, StepFailedError } from '../errors.ts';
import { ensureStateSchema } from '../state/schema.ts';
import { readStateAndLease } from '../state/database-state.ts';
import { leaseLost } from '../state/lease.ts';
import { readAllProgress, reopenProgress, restartProgress, type ProgressRow } from '../state/migrate-progress.ts';
import { recordHistory } from '../state/history.ts';
import { engineBounds } from '../state/engine-transaction.ts';
import { kindOf, prepareStep, runSteps, type ReadyStep, type StepResult } from '../steps/run-steps.ts';
import type { Migration } from '../steps/step-kind.ts';
import { inspectState, partlyRunChanged, refuseChangedMigrateSteps, type Inspection } from './inspect.ts';
import { pendingRows } from './pending-query.ts';
import { autocommitted, leased, reading, type RunContext } from './run-context.ts';

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
 * far it got. Each batch is one autocommitted statement holding the batch's writes AND its progress row (`runBatch`),
 * so a crash at any point neither loses nor repeats a batch. Call again until `finished`.
 */

export async function migrate(ctx: RunContext, catalog: Catalog, target?: string, options: MigrateOptions = {}): Promise<MigrateResult> {
  const started = Date.now();
  await ensureStateSchema(ctx.client, engineBounds(ctx.settings));
  const restart = options.restartSteps ?? [];
  // The state and the lease in one autocommitted statement: one snapshot, one call.
  const { state, lease } = await readStateAndLease(autocommitted(ctx, 'reading the upgrade state before migrate'));
  const inspection = inspectState(state, catalog, target);
  refuseChangedMigrateSteps(catalog, inspection, restart);
  if (inspection.pending.expand.length > 0) {
    throw new PhaseGateError('migrate', [{ kind: 'expand-pending', steps: inspection.pending.expand.map((s) => s.id) }]);
  }
  // Every step's kind checks what it needs of the database before anything is written (a keyset: KeysetKeyError).
  const pending: ReadyStep[] = [];
  for (const step of inspection.pending.migrate) pending.push(await prepareStep(ctx, step));
  // Before the first write (progress rows, reopened steps): a run without the lease must change nothing. The lease was
  // read with the state, so this costs no call; a lease lost since then is refused by the write itself, since every
  // write renews it first (a `leased` transaction, or an engine function holding it: `emc.hold_lease`).
  if (lease?.owner !== ctx.runId) throw leaseLost(ctx.runId, lease);
  await restartChangedSteps(ctx, catalog, inspection, restart);
  const reopened: ReadyStep[] = [];
  for (const step of await reopenedSteps(ctx, catalog, inspection)) reopened.push(await prepareStep(ctx, step));
  const results = await runSteps(ctx, [...reopened, ...pending], started + ctx.settings.migrateBudgetMs);
  const progress = await describeProgress(ctx, results);
  return {
    phase: 'migrate',
    finished: progress.every((p) => p.finished),
    rowsThisCall: results.reduce((n, r) => n + r.rows, 0),
    batchesThisCall: results.reduce((n, r) => n + r.batches, 0),
    durationMs: Date.now() - started,
    steps: progress,
    stepsFinished: results.flatMap((r) => (r.finished ? [r.step.id] : [])),
    version: inspection.versionText,
  };
}

/**
 * Finished migrate steps of releases not yet contracted whose pending query finds rows again (the old release
 * wrote them after the step finished, with no trigger to carry them over). They get another pass, so that
 * contract's gate can open instead of dropping those rows' old columns.
 */
async function reopenedSteps(ctx: RunContext, catalog: Catalog, inspection: Inspection): Promise<Migration[]> {
  const releasesToContract = new Set(inspection.pending.contract.map((s) => s.release));
  const reopened: Migration[] = [];
  for (const step of catalog.steps) {
    if (step.phase !== 'migrate' || !releasesToContract.has(step.release) || inspection.pending.migrate.includes(step)) {
      continue;
    }
    const pending = await reading(ctx, `counting the rows pending for ${step.id}`, (tx) => pendingRows(tx, step));
    if (pending === undefined || pending === 0) continue;
    await leased(ctx, `reopening ${step.id}`, (tx) => reopenProgress(tx, step.id));
    ctx.onEvent?.({ type: 'migrate-pass-restarted', stepId: step.id, pending, pass: 1 });
    reopened.push(step);
  }
  return reopened;
}

/**
 * The operator's decision (`restartSteps`) for a partly-run step whose file changed: its progress starts again from
 * the first key with the new file, and the decision is recorded in history, in one transaction. Only progress still
 * carrying the old checksum is reset, so the later calls of the same execution leave the new progress alone.
 */
async function restartChangedSteps(ctx: RunContext, catalog: Catalog, inspection: Inspection, ids: readonly string[]): Promise<void> {
  for (const change of partlyRunChanged(catalog, inspection.state).filter((c) => ids.includes(c.stepId))) {
    const step = catalog.steps.find((s): s is Migration => s.id === change.stepId && s.phase === 'migrate')!;
    await leased(ctx, `restarting ${step.id} from its first key`, async (tx) => {
      const seen = { checksum: change.progressChecksum, batches: change.batches };
      if (!(await restartProgress(tx, step, kindOf(step).describe(step), seen))) {
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

/**
 * Each step's report after this call: its progress row, and what remains of it (0 once finished). When every step
 * finished, nothing remains to ask: the rows are one autocommitted read. Otherwise one read-only transaction for all
 * of them, where the pending queries run (on the Data API each transaction costs two calls besides its statements).
 */
async function describeProgress(ctx: RunContext, results: readonly StepResult[]): Promise<MigrateStepProgress[]> {
  const what = 'reading the progress of the migrate steps';
  if (results.every((r) => r.finished)) return describe(await readAllProgress(autocommitted(ctx, what)), results, async () => 0);
  return reading(ctx, what, async (tx) =>
    describe(await readAllProgress(tx), results, async ({ prepared, finished }, progress) =>
      finished ? 0 : prepared.remaining(tx, progress),
    ),
  );
}

async function describe(
  rows: ReadonlyMap<string, ProgressRow>,
  results: readonly StepResult[],
  remainingOf: (result: StepResult, progress: ProgressRow | undefined) => Promise<number | undefined>,
): Promise<MigrateStepProgress[]> {
  const described: MigrateStepProgress[] = [];
  for (const result of results) {
    const progress = rows.get(result.step.id);
    const remaining = await remainingOf(result, progress);
    described.push({
      stepId: result.step.id,
      rowsDone: progress?.rowsDone ?? 0,
      remaining: remaining ?? null,
      cursor: progress?.cursor ?? null,
      batches: progress?.batches ?? 0,
      finished: result.finished,
    });
  }
  return described;
}
