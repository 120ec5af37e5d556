import type { Catalog } from '../../lambdas/core/catalog/step.ts';
import { contract } from '../../lambdas/core/phases/contract.ts';
import { expand } from '../../lambdas/core/phases/expand.ts';
import { migrate } from '../../lambdas/core/phases/migrate.ts';
import type { RunContext } from '../../lambdas/core/phases/run-context.ts';
import type { SettingsOverrides } from '../../lambdas/core/settings.ts';
import type { SqlClient } from '../../lambdas/core/sql/sql-client.ts';
import { finishUpgrade, type RunSummary } from '../../lambdas/core/workflow/run-summary.ts';
import { startUpgrade } from '../../lambdas/core/workflow/upgrade-plan.ts';

export type WorkflowPhase = 'plan' | 'expand' | 'migrate' | 'contract' | 'finish';

/**
 * One execution of the upgrade workflow as the state machine runs it, task after task, on the engine directly:
 * "Plan upgrade" (validates, takes the lease), "Expand schema", "Migrate data" until finished, contract with the
 * drain confirmed, "Release lease and summarise". `onPhase` is told before each task starts.
 */
export async function runWorkflow(
  client: SqlClient,
  catalog: Catalog,
  options: { runId: string; defaults?: SettingsOverrides; input?: unknown; onPhase?: (phase: WorkflowPhase) => void },
): Promise<RunSummary> {
  options.onPhase?.('plan');
  const plan = await startUpgrade(client, catalog, { runId: options.runId, input: options.input ?? {}, defaults: options.defaults });
  const ctx: RunContext = { client, runId: plan.runId, settings: plan.settings };
  options.onPhase?.('expand');
  await expand(ctx, catalog, plan.target);
  if (plan.stopAfter !== 'expand') {
    options.onPhase?.('migrate');
    for (let call = 0; ; call++) {
      if (call > 1000) throw new Error('migrate did not finish in 1000 calls');
      if ((await migrate(ctx, catalog, plan.target)).finished) break;
    }
  }
  if (!plan.stopAfter) {
    options.onPhase?.('contract');
    await contract(ctx, catalog, plan.target, { drainConfirmed: true });
  }
  options.onPhase?.('finish');
  return finishUpgrade(client, plan);
}

/** Runs `work` over `items` with at most `limit` at a time; results in the items' order. */
export async function mapWithConcurrency<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!);
    }
  });
  await Promise.all(lanes);
  return results;
}
