import type { RunContext } from '../phases/run-context.ts';
import { keysetMigration } from './keyset-migration.ts';
import { repeatUntilZeroMigration } from './repeat-until-zero-migration.ts';
import { statementByStatementStep } from './statement-by-statement-step.ts';
import type { PreparedStep, Step, StepKind, StepOutcome } from './step-kind.ts';
import { transactionalSchemaStep } from './transactional-schema-step.ts';

/** Every kind, by its name: a kind of `Step` missing here does not compile. */
const STEP_KINDS: { readonly [K in Step['kind']]: StepKind<Extract<Step, { kind: K }>> } = {
  transactional: transactionalSchemaStep,
  'statement-by-statement': statementByStatementStep,
  keyset: keysetMigration,
  'repeat-until-zero': repeatUntilZeroMigration,
};

/** Every kind, in the order load-catalog asks them which one a file is. */
export const ALL_STEP_KINDS: readonly StepKind<Step>[] = Object.values(STEP_KINDS);

export function kindOf(step: Step): StepKind<Step> {
  return STEP_KINDS[step.kind];
}

/** A step with what its kind checked of the database before anything was written. */
export interface ReadyStep {
  readonly step: Step;
  readonly prepared: PreparedStep;
}

export async function prepareStep(ctx: RunContext, step: Step): Promise<ReadyStep> {
  return { step, prepared: await kindOf(step).prepare(ctx, step) };
}

/** A step's outcome in a run of the runner; a step it did not start is not finished, with nothing done. */
export type StepResult = StepOutcome & ReadyStep & { readonly durationMs: number };

/**
 * Runs `steps` in order until `deadline` (epoch ms; schema steps are never cut short). Each kind records its step
 * applied, with the version, in its last transaction; the runner reports what happened.
 *
 * Steps run strictly in order: a step starts only once every step before it has finished. Otherwise a call whose
 * budget ran out between two batches of one step could go on to finish (and record as applied) a later step, and the
 * order check would then refuse every later run of the upgrade. However long the checks before took, a call runs at
 * least one batch: a call that made no progress would let the state machine loop forever.
 */
export async function runSteps(ctx: RunContext, steps: readonly ReadyStep[], deadline: number): Promise<StepResult[]> {
  const results: StepResult[] = [];
  let earlierUnfinished = false;
  for (const { step, prepared } of steps) {
    const mustProgress = results.every((r) => r.batches === 0);
    if (earlierUnfinished || (Date.now() >= deadline && !mustProgress)) {
      results.push({ step, prepared, finished: false, rows: 0, batches: 0, durationMs: 0 });
      earlierUnfinished = true;
      continue;
    }
    const started = Date.now();
    ctx.onEvent?.({ type: 'step-started', stepId: step.id, phase: step.phase });
    const outcome = await prepared.run({ deadline, mustProgress });
    const durationMs = Date.now() - started;
    if (outcome.finished) ctx.onEvent?.({ type: 'step-succeeded', stepId: step.id, durationMs, version: outcome.version });
    else earlierUnfinished = true;
    results.push({ ...outcome, step, prepared, durationMs });
  }
  return results;
}

/** A schema step as a phase reports it. */
export interface StepRun {
  readonly stepId: string;
  readonly phase: string;
  readonly durationMs: number;
  /** The composite version once the step committed. */
  readonly version: string;
}

/** Applies `steps` in order, each to its end (expand's and contract's steps): a step that fails throws. */
export async function applySteps(ctx: RunContext, steps: readonly Step[]): Promise<StepRun[]> {
  const ready: ReadyStep[] = [];
  for (const step of steps) ready.push(await prepareStep(ctx, step));
  return (await runSteps(ctx, ready, Infinity)).flatMap((r) =>
    r.finished ? [{ stepId: r.step.id, phase: r.step.phase, durationMs: r.durationMs, version: r.version }] : [],
  );
}
