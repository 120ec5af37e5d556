import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contract, expand, loadCatalog, readHistory, type Catalog } from '../lambdas/core/index.ts';
import { ApplicationWriter, ledgerMismatches, type Random, type ReleaseWorkload } from '../bin/local/application-writer.ts';
import { seedDemoDatabase } from '../bin/local/demo-database.ts';
import { NEW_RELEASE_WORKLOAD, OLD_RELEASE_WORKLOAD, type DemoRow } from '../bin/local/demo-workloads.ts';
import { DEMO_MIGRATIONS } from './support/catalog-fixtures.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { migrateToEnd, startRun } from './support/engine.ts';

/**
 * The point of Expand-Migrate-Contract: the application keeps writing, through the old release's columns
 * (is_public, owner) and the new release's (visibility, owner_id), while the upgrade runs, and not one write fails
 * or is lost. Several writer loops run through expand, migrate and contract of the demo release bexar; each owns a
 * share of the rows, so the last value it wrote to a row is the value that row must end with.
 */

const SEEDED = 20_000;
const WRITERS = 4;

type Phase = 'old-only' | 'mixed' | 'new-only';

/**
 * One writer's workload: the old release's writes, the new release's, or (while both releases run) either at random,
 * so one row gets writes of both releases one after the other. `seen` is the phase its last write started in.
 */
function releaseMix(phase: () => Phase, counts: { oldStyle: number; newStyle: number }, seen: { phase: Phase }): ReleaseWorkload<DemoRow> {
  const pick = async <T>(random: Random, write: (workload: ReleaseWorkload<DemoRow>) => Promise<T>): Promise<T> => {
    seen.phase = phase();
    const useOld = seen.phase === 'old-only' || (seen.phase === 'mixed' && random() < 0.5);
    const result = await write(useOld ? OLD_RELEASE_WORKLOAD : NEW_RELEASE_WORKLOAD);
    if (useOld) counts.oldStyle++;
    else counts.newStyle++;
    return result;
  };
  return {
    insert: (db, n, random) => pick(random, (w) => w.insert(db, n, random)),
    update: (db, id, n, random) => pick(random, (w) => w.update(db, id, n, random)),
  };
}

describe('application writers during the whole upgrade', () => {
  let db: TestDatabase;
  let catalog: Catalog;

  beforeAll(async () => {
    db = await createTestDatabase();
    catalog = await loadCatalog(DEMO_MIGRATIONS);
    await seedDemoDatabase(db.client, SEEDED);
  });
  afterAll(async () => {
    await db.drop();
  });

  it('lose no write and leave every row with the visibility and owner it was last given', async () => {
    const ledger = new Map<number, DemoRow>();
    for (let g = 1; g <= SEEDED; g++) {
      ledger.set(g, { visibility: g % 3 === 0 ? 'public' : 'private', owner: `tenant-${g % 500}` });
    }
    let phase: Phase = 'old-only';
    const counts = { oldStyle: 0, newStyle: 0 };
    const seen = Array.from({ length: WRITERS }, () => ({ phase: 'old-only' as Phase }));
    const writers = Array.from(
      { length: WRITERS },
      (_, k) =>
        new ApplicationWriter({
          databaseUrl: db.url,
          applicationName: `writer-${k}`,
          workload: releaseMix(() => phase, counts, seen[k]!),
          owned: [...ledger.keys()].filter((id) => id % WRITERS === k),
          ledger,
          insertShare: 0.15,
          seed: 1234 + k,
          pauseMs: 0,
        }),
    );
    const setPhase = (name: string) => writers.forEach((w) => (w.phase = name));

    const ctx = await startRun(db.client, 'writers-run', { batchSize: 500, batchPauseMs: 5 });
    for (const w of writers) w.start();
    let reports;
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      // Only the old release runs during expand: it writes the old columns.
      setPhase('expand');
      await expand(ctx, catalog);
      phase = 'mixed';
      setPhase('migrate');
      await migrateToEnd(ctx, catalog);
      // The drain: old-release tasks stop; new ones keep writing through contract.
      phase = 'new-only';
      setPhase('drain');
      while (seen.some((s) => s.phase !== 'new-only')) await new Promise((resolve) => setTimeout(resolve, 5));
      await new Promise((resolve) => setTimeout(resolve, 20));
      setPhase('contract');
      await contract(ctx, catalog, undefined, { drainConfirmed: true });
      setPhase('after');
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      reports = await Promise.all(writers.map((w) => w.stop()));
    }

    expect(reports.flatMap((r) => r.errors)).toEqual([]);
    const written = (phaseName: string) => reports.reduce((n, r) => n + (r.byPhase[phaseName] ?? 0), 0);
    expect(written('migrate')).toBeGreaterThan(100);
    expect(written('contract')).toBeGreaterThan(0);
    expect(counts.oldStyle).toBeGreaterThan(50);
    expect(counts.newStyle).toBeGreaterThan(50);
    expect(reports.reduce((n, r) => n + r.inserts, 0)).toBeGreaterThan(10);
    const history = await readHistory(db.client, 'writers-run');
    expect(history.filter((h) => h.outcome === 'failed')).toEqual([]);

    const columns = await db.pool.query(
      `SELECT column_name, is_nullable FROM information_schema.columns WHERE table_name = 'images' ORDER BY ordinal_position`,
    );
    expect(columns.rows.map((r) => r.column_name)).toEqual(['id', 'name', 'created_at', 'visibility', 'owner_id']);
    const rows = await db.pool.query<{ id: string; visibility: DemoRow['visibility']; owner_id: string; name: string }>(
      `SELECT id, visibility, owner_id, name FROM images ORDER BY id`,
    );
    expect(rows.rows).toHaveLength(ledger.size);
    expect(rows.rows.filter((r) => r.name !== r.name.trim())).toEqual([]);
    const wrong = ledgerMismatches(ledger, new Map(rows.rows.map((r) => [Number(r.id), { visibility: r.visibility, owner: r.owner_id }])));
    expect(wrong.slice(0, 20)).toEqual([]);
    expect(wrong).toHaveLength(0);
  });
});
