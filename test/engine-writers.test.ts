import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contract, expand, loadCatalog, readHistory, type Catalog } from '../lambdas/core/index.ts';
import { seedDemoDatabase } from '../bin/local/demo-database.ts';
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

type Phase = 'old-only' | 'mixed' | 'new-only' | 'stop';
type Expected = { visibility: 'public' | 'private'; owner: string };

/** Small deterministic PRNG (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
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
    const expected = new Map<number, Expected>();
    for (let g = 1; g <= SEEDED; g++) {
      expected.set(g, { visibility: g % 3 === 0 ? 'public' : 'private', owner: `tenant-${g % 500}` });
    }
    let phase: Phase = 'old-only';
    let migrating = false;
    const failures: string[] = [];
    const counts = { ops: 0, duringMigrate: 0, oldStyle: 0, newStyle: 0, inserts: 0, duringContract: 0 };
    let contracting = false;
    const seen: Phase[] = Array.from({ length: WRITERS }, () => 'old-only');

    async function writer(k: number): Promise<void> {
      const next = random(1234 + k);
      const own = [...expected.keys()].filter((id) => id % WRITERS === k);
      while (phase !== 'stop') {
        const current = phase;
        seen[k] = current;
        const useOld = current === 'old-only' || (current === 'mixed' && next() < 0.5);
        const pick = next();
        const id = own[Math.floor(next() * own.length)]!;
        const publicNow = next() < 0.5;
        const owner = `owner-${k}-${Math.floor(next() * 1000)}`;
        const visibility = publicNow ? 'public' : 'private';
        try {
          if (pick < 0.15) {
            const inserted = useOld
              ? await db.pool.query<{ id: string }>(
                  `INSERT INTO images (name, owner, is_public) VALUES ($1, $2, $3) RETURNING id`,
                  [`w${k}-${counts.ops}`, owner, publicNow],
                )
              : await db.pool.query<{ id: string }>(
                  `INSERT INTO images (name, owner_id, visibility) VALUES ($1, $2, $3) RETURNING id`,
                  [`w${k}-${counts.ops}`, owner, visibility],
                );
            const newId = Number(inserted.rows[0]!.id);
            own.push(newId);
            expected.set(newId, { visibility, owner });
            counts.inserts++;
          } else if (pick < 0.6) {
            await db.pool.query(
              useOld ? `UPDATE images SET is_public = $2 WHERE id = $1` : `UPDATE images SET visibility = $2 WHERE id = $1`,
              [id, useOld ? publicNow : visibility],
            );
            expected.get(id)!.visibility = visibility;
          } else {
            await db.pool.query(
              useOld ? `UPDATE images SET owner = $2 WHERE id = $1` : `UPDATE images SET owner_id = $2 WHERE id = $1`,
              [id, owner],
            );
            expected.get(id)!.owner = owner;
          }
          counts.ops++;
          if (useOld) counts.oldStyle++;
          else counts.newStyle++;
          if (migrating) counts.duringMigrate++;
          if (contracting) counts.duringContract++;
        } catch (error) {
          failures.push(`${useOld ? 'old' : 'new'} ${pick < 0.15 ? 'insert' : 'update'} of ${id}: ${(error as Error).message}`);
        }
      }
    }

    const ctx = await startRun(db.client, 'writers-run', { batchSize: 500, batchPauseMs: 5 });
    const writers = Array.from({ length: WRITERS }, (_, k) => writer(k));
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      // Only the old release runs during expand: it writes the old columns.
      await expand(ctx, catalog);
      phase = 'mixed';
      migrating = true;
      await migrateToEnd(ctx, catalog);
      migrating = false;
      // The drain: old-release tasks stop; new ones keep writing through contract.
      phase = 'new-only';
      while (seen.some((p) => p !== 'new-only')) await new Promise((resolve) => setTimeout(resolve, 5));
      await new Promise((resolve) => setTimeout(resolve, 20));
      contracting = true;
      await contract(ctx, catalog, undefined, { drainConfirmed: true });
      contracting = false;
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      phase = 'stop';
      await Promise.all(writers);
    }

    expect(failures).toEqual([]);
    expect(counts.duringMigrate).toBeGreaterThan(100);
    expect(counts.duringContract).toBeGreaterThan(0);
    expect(counts.oldStyle).toBeGreaterThan(50);
    expect(counts.newStyle).toBeGreaterThan(50);
    expect(counts.inserts).toBeGreaterThan(10);
    const history = await readHistory(db.client, 'writers-run');
    expect(history.filter((h) => h.outcome === 'failed')).toEqual([]);

    const columns = await db.pool.query(
      `SELECT column_name, is_nullable FROM information_schema.columns WHERE table_name = 'images' ORDER BY ordinal_position`,
    );
    expect(columns.rows.map((r) => r.column_name)).toEqual(['id', 'name', 'created_at', 'visibility', 'owner_id']);
    const rows = await db.pool.query<{ id: string; visibility: string; owner_id: string; name: string }>(
      `SELECT id, visibility, owner_id, name FROM images ORDER BY id`,
    );
    expect(rows.rows).toHaveLength(expected.size);
    const wrong: string[] = [];
    for (const row of rows.rows) {
      const want = expected.get(Number(row.id));
      if (!want || want.visibility !== row.visibility || want.owner !== row.owner_id || row.name !== row.name.trim()) {
        wrong.push(`${row.id}: got ${row.visibility}/${row.owner_id}, want ${want?.visibility}/${want?.owner}`);
      }
    }
    expect(wrong.slice(0, 20)).toEqual([]);
    expect(wrong).toHaveLength(0);
  });
});
