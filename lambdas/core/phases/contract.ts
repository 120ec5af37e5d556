import type { Catalog } from '../catalog/step.ts';
import { PhaseGateError } from '../errors.ts';
import { engineBounds } from '../state/engine-transaction.ts';
import { ensureStateSchema } from '../state/schema.ts';
import { applySteps } from '../steps/run-steps.ts';
import type { SchemaPhaseResult } from './expand.ts';
import { contractGates } from './gates.ts';
import { inspect } from './inspect.ts';
import { reading, type RunContext } from './run-context.ts';

export interface ContractOptions {
  /**
   * The drain gate's verdict: no task of the old release is running. Contract drops what the old release uses, so
   * it never runs without this.
   */
  readonly drainConfirmed: boolean;
}

/**
 * Applies every pending contract step up to the target release, once its gates are open: expand at the target's
 * head, every migration finished with nothing pending, and the old release drained.
 */
export async function contract(
  ctx: RunContext,
  catalog: Catalog,
  target: string | undefined,
  options: ContractOptions,
): Promise<SchemaPhaseResult> {
  await ensureStateSchema(ctx.client, engineBounds(ctx.settings));
  const { inspection, closed } = await reading(ctx, 'reading the upgrade state before contract', async (tx) => {
    const inspection = await inspect(tx, catalog, target);
    return { inspection, closed: await contractGates(tx, catalog, inspection, options.drainConfirmed) };
  });
  if (closed.length > 0 && inspection.pending.contract.length > 0) throw new PhaseGateError('contract', closed);
  const stepsRun = await applySteps(ctx, inspection.pending.contract);
  return {
    phase: 'contract',
    stepsRun,
    versionBefore: inspection.versionText,
    versionAfter: stepsRun.at(-1)?.version ?? inspection.versionText,
  };
}
