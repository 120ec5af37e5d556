import type { Catalog } from '../catalog/step.ts';
import { engineBounds } from '../state/engine-transaction.ts';
import { ensureStateSchema } from '../state/schema.ts';
import { applySteps, type StepRun } from '../steps/run-steps.ts';
import { inspect } from './inspect.ts';
import { reading, type RunContext } from './run-context.ts';

export interface SchemaPhaseResult {
  readonly phase: 'expand' | 'contract';
  readonly stepsRun: readonly StepRun[];
  readonly versionBefore: string;
  readonly versionAfter: string;
}

/** Applies every pending expand step up to the target release, in order, each in its own transaction. */
export async function expand(ctx: RunContext, catalog: Catalog, target?: string): Promise<SchemaPhaseResult> {
  await ensureStateSchema(ctx.client, engineBounds(ctx.settings));
  const inspection = await reading(ctx, 'reading the upgrade state before expand', (tx) => inspect(tx, catalog, target));
  const stepsRun = await applySteps(ctx, inspection.pending.expand);
  return {
    phase: 'expand',
    stepsRun,
    versionBefore: inspection.versionText,
    versionAfter: stepsRun.at(-1)?.version ?? inspection.versionText,
  };
}
