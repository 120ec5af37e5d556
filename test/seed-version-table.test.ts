import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCatalog } from '../lambdas/core/catalog/load-catalog.ts';
import type { Catalog } from '../lambdas/core/catalog/step.ts';
import { applySteps } from '../lambdas/core/steps/run-steps.ts';
import { inspect } from '../lambdas/core/phases/inspect.ts';
import type { RunContext } from '../lambdas/core/phases/run-context.ts';
import { formatVersion } from '../lambdas/core/state/composite-version.ts';
import { readState } from '../lambdas/core/state/database-state.ts';
import { seedDemoDatabase } from '../bin/local/demo-database.ts';
import { DEMO_MIGRATIONS } from './support/catalog-fixtures.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { endRun, migrateToEnd, startRun } from './support/engine.ts';

/**
 * The table of database identifiers from Glance's zero-downtime upgrade document, reproduced step by step on the
 * demo release `bexar` (three expands, three migrates, three contracts) against a real PostgreSQL.
 */
const GLANCE_TABLE = [
  ['E', 'bexar_expand01', 'upgrade begins'],
  ['E', 'bexar_expand02', ''],
  ['E', 'bexar_expand03', ''],
  ['M', 'bexar_expand03', 'bexar_migrate01 occurs'],
  ['M', 'bexar_expand03', 'bexar_migrate02 occurs'],
  ['M', 'bexar_expand03', 'bexar_migrate03 occurs'],
  ['C', 'bexar_expand03, bexar_contract01', ''],
  ['C', 'bexar_expand03, bexar_contract02', ''],
  ['C', 'bexar_expand03, bexar_contract03', 'upgrade completed'],
] as const;

describe('composite version through the bexar upgrade', () => {
  let db: TestDatabase;
  let catalog: Catalog;
  let ctx: RunContext;

  beforeAll(async () => {
    db = await createTestDatabase();
    catalog = await loadCatalog(DEMO_MIGRATIONS);
    await seedDemoDatabase(db.client, 2_000);
    ctx = await startRun(db.client, 'seed-table', { batchSize: 500 });
  });
  afterAll(async () => {
    await endRun(ctx);
    await db.drop();
  });

  it('reports exactly the database identifiers of each stage', async () => {
    const observed: (readonly [string, string, string])[] = [];
    const version = async () => formatVersion((await readState(db.client)).version);

    expect(await version()).toBe('(none)');
    for (const step of (await inspect(db.client, catalog)).pending.expand) {
      await applySteps(ctx, [step]);
      observed.push(['E', await version(), step.number === 1 ? 'upgrade begins' : '']);
    }
    // Migrate one step at a time, observing the version after each finishes.
    const migrateSteps = (await inspect(db.client, catalog)).pending.migrate;
    for (const step of migrateSteps) {
      await migrateToEnd(ctx, catalog, { until: (r) => r.stepsFinished.includes(step.id) });
      observed.push(['M', await version(), `${step.id} occurs`]);
    }
    const contractSteps = (await inspect(db.client, catalog)).pending.contract;
    for (const step of contractSteps) {
      await applySteps(ctx, [step]);
      observed.push(['C', await version(), step.number === contractSteps.length ? 'upgrade completed' : '']);
    }

    expect(observed).toEqual(GLANCE_TABLE);
    const images = await db.pool.query(
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE visibility = 'public')::int AS public FROM images`,
    );
    expect(images.rows[0]).toEqual({ n: 2000, public: 666 });
  });
});
