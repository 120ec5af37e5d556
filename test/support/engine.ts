import type { Catalog } from '../../lambdas/core/catalog/step.ts';
import { contract } from '../../lambdas/core/phases/contract.ts';
import { expand } from '../../lambdas/core/phases/expand.ts';
import { migrate, type MigrateResult } from '../../lambdas/core/phases/migrate.ts';
import type { RunContext } from '../../lambdas/core/phases/run-context.ts';
import { resolveSettings, type SettingsOverrides } from '../../lambdas/core/settings.ts';
import type { SqlClient } from '../../lambdas/core/sql/sql-client.ts';
import { engineBounds } from '../../lambdas/core/state/engine-transaction.ts';
import { acquireLease, releaseLease } from '../../lambdas/core/state/lease.ts';
import { ensureStateSchema } from '../../lambdas/core/state/schema.ts';

/**
 * A run context holding the lease, as the state machine's plan step leaves it. Batches are `batchSize` rows each
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

/** Migrate until finished; returns every call's result. */
export async function migrateToEnd(ctx: RunContext, catalog: Catalog, target?: string): Promise<MigrateResult[]> {
  const results: MigrateResult[] = [];
  for (let call = 0; call < 10_000; call++) {
    const result = await migrate(ctx, catalog, target);
    results.push(result);
    if (result.finished) return results;
  }
  throw new Error('migrate did not finish in 10000 calls');
}

/** The whole cycle, as the state machine runs it. */
export async function upgrade(ctx: RunContext, catalog: Catalog, target?: string): Promise<void> {
  await expand(ctx, catalog, target);
  await migrateToEnd(ctx, catalog, target);
  await contract(ctx, catalog, target, { drainConfirmed: true });
}
