import type { Catalog } from '../../lambdas/core/catalog/step.ts';
import { contract } from '../../lambdas/core/phases/contract.ts';
import { expand } from '../../lambdas/core/phases/expand.ts';
import { migrateToEnd } from '../../lambdas/core/phases/migrate-to-end.ts';
import type { RunContext } from '../../lambdas/core/phases/run-context.ts';
import { resolveSettings, type SettingsOverrides } from '../../lambdas/core/settings.ts';
import type { SqlClient } from '../../lambdas/core/sql/sql-client.ts';
import { engineBounds } from '../../lambdas/core/state/engine-transaction.ts';
import { acquireLease, releaseLease } from '../../lambdas/core/state/lease.ts';
import { ensureStateSchema } from '../../lambdas/core/state/schema.ts';
import { finishUpgrade, type RunSummary } from '../../lambdas/core/workflow/run-summary.ts';
import { startUpgrade } from '../../lambdas/core/workflow/upgrade-plan.ts';

/*
 * The engine-level upgrade sequence of the tests: the deployed state machine (lib/upgrade-state-machine.ts) runs these
 * tasks in this order; tests about the workflow itself run that state machine (bin/local/run-local-execution.ts), tests
 * of the engine run the phases here, one helper for the sequence; the migrate loop is the engine's migrateToEnd.
 */

/**
 * A run context holding the lease, as the state machine's start task ("Start upgrade") leaves it. Batches are `batchSize` rows each
 * (`targetBatchMs` 0) unless the test asks for adaptive sizes: batch counts and cursors then follow from the data
 * alone, not from how fast this machine is.
 */
export async function startRun(
  client: SqlClient,
  runId = 'test-run',
  overrides: SettingsOverrides = {},
): Promise<RunContext> {
  const settings = resolveSettings({ batchPauseMs: 0, targetBatchMs: 0, ...overrides });
  await ensureStateSchema(client, engineBounds(settings));
  await acquireLease(client, runId, settings.leaseTtlSeconds, { bounds: engineBounds(settings) });
  return { client, runId, settings };
}

export async function endRun(ctx: RunContext): Promise<void> {
  await releaseLease(ctx.client, ctx.runId);
}

export { migrateToEnd, type MigrateToEndOptions } from '../../lambdas/core/phases/migrate-to-end.ts';

export type UpgradePhase = 'start' | 'expand' | 'migrate' | 'contract' | 'finish';

/**
 * The phases in the state machine's order with the lease already held: expand, migrate until finished, contract with
 * the drain confirmed; `stopAfter` ends early as the execution input's does. `onPhase` is told before each starts.
 */
export async function upgrade(
  ctx: RunContext,
  catalog: Catalog,
  target?: string,
  options: { readonly stopAfter?: 'expand' | 'migrate' | null; readonly onPhase?: (phase: UpgradePhase) => void } = {},
): Promise<void> {
  options.onPhase?.('expand');
  await expand(ctx, catalog, target);
  if (options.stopAfter === 'expand') return;
  options.onPhase?.('migrate');
  await migrateToEnd(ctx, catalog, { target });
  if (options.stopAfter === 'migrate') return;
  options.onPhase?.('contract');
  await contract(ctx, catalog, target, { drainConfirmed: true });
}

/**
 * One execution's tasks on the engine directly, without Step Functions: "Start upgrade" (validates the input, takes
 * the lease), the phases (`upgrade`), "Release lease and summarise". For tests that run the sequence many times (the
 * kill-point experiment); what the state machine itself decides (retries, catches, the drain gate) is tested by
 * running it.
 */
export async function runWorkflow(
  client: SqlClient,
  catalog: Catalog,
  options: { runId: string; defaults?: SettingsOverrides; input?: unknown; onPhase?: (phase: UpgradePhase) => void },
): Promise<RunSummary> {
  options.onPhase?.('start');
  const plan = await startUpgrade(client, catalog, { runId: options.runId, input: options.input ?? {}, defaults: options.defaults });
  await upgrade({ client, runId: plan.runId, settings: plan.settings }, catalog, plan.target, {
    stopAfter: plan.stopAfter,
    onPhase: options.onPhase,
  });
  options.onPhase?.('finish');
  return finishUpgrade(client, plan);
}
