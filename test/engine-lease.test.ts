import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  acquireLease,
  contract,
  currentLease,
  ensureStateSchema,
  expand,
  LeaseHeldError,
  LeaseLostError,
  loadCatalog,
  migrate,
  PgSqlClient,
  plan,
  releaseLease,
  resolveSettings,
  STATE_SCHEMA,
  type Catalog,
  type RunContext,
} from '../lambdas/core/index.ts';
import { seedDemoDatabase } from '../bin/local/demo-database.ts';
import { DEMO_MIGRATIONS } from './support/catalog-fixtures.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { migrateToEnd, startRun } from './support/engine.ts';
import { engineState, publicSchema, rejectionOf, tableRows } from './support/engine-faults.ts';

let catalog: Catalog;
const databases: TestDatabase[] = [];

async function freshDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  databases.push(db);
  return db;
}

beforeAll(async () => {
  catalog = await loadCatalog(DEMO_MIGRATIONS);
});
afterEach(async () => {
  for (const db of databases.splice(0)) await db.drop();
});

const STATE_TABLES = ['applied_step', 'history', 'lease', 'migrate_progress', 'version'];

async function stateTables(db: TestDatabase): Promise<string[]> {
  const result = await db.pool.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1`,
    [STATE_SCHEMA],
  );
  return result.rows.map((r) => r.table_name);
}

describe('the tool schema emc', () => {
  it('is created on first use, and creating it again is a no-op that keeps its data', async () => {
    const db = await freshDatabase();
    expect(STATE_SCHEMA).toBe('emc');
    // plan is read-only: it does not even create the tool's schema.
    await plan(db.client, catalog);
    expect(await stateTables(db)).toEqual([]);

    await ensureStateSchema(db.client);
    expect(await stateTables(db)).toEqual(STATE_TABLES);
    await acquireLease(db.client, 'keeper', 600);

    await ensureStateSchema(db.client);
    await ensureStateSchema(db.client);
    expect(await stateTables(db)).toEqual(STATE_TABLES);
    expect((await currentLease(db.client))?.owner).toBe('keeper');
  });

  it('is created by two (or three) runs starting at once on an empty database, every call succeeding', async () => {
    const db = await freshDatabase();
    const clients = [new PgSqlClient(db.url), new PgSqlClient(db.url), new PgSqlClient(db.url)];
    try {
      for (let round = 0; round < 6; round++) {
        await db.pool.query(`DROP SCHEMA IF EXISTS emc CASCADE`);
        const racers = round % 2 === 0 ? clients.slice(0, 2) : clients;
        // Warm each pool so that the calls really overlap instead of queueing behind connection setup.
        await Promise.all(racers.map((c) => c.query('SELECT 1')));
        const outcomes = await Promise.allSettled(racers.map((c) => ensureStateSchema(c)));
        expect(outcomes.map((o) => (o.status === 'rejected' ? String(o.reason) : 'ok'))).toEqual(racers.map(() => 'ok'));
        expect(await stateTables(db)).toEqual(STATE_TABLES);
      }
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });
});

describe('the upgrade lease', () => {
  const settings = resolveSettings({ batchPauseMs: 0 });
  const runAs = (db: TestDatabase, runId: string): RunContext => ({ client: db.client, runId, settings });

  async function leaseRow(db: TestDatabase) {
    const result = await db.pool.query<{ owner: string; acquired_at: Date; expires_at: Date; secs_left: number }>(
      `SELECT owner, acquired_at, expires_at, extract(epoch FROM expires_at - now())::float8 AS secs_left FROM emc.lease`,
    );
    return result.rows[0];
  }

  async function snapshot(db: TestDatabase) {
    return {
      schema: await publicSchema(db.pool),
      images: await tableRows(db.pool, 'images'),
      engine: await engineState(db.pool),
    };
  }

  it('refuses a second owner with LeaseHeldError naming the holder', async () => {
    const db = await freshDatabase();
    await ensureStateSchema(db.client);
    const held = await acquireLease(db.client, 'run-a', 600);
    expect(held.owner).toBe('run-a');

    const error = await rejectionOf(acquireLease(db.client, 'run-b', 600));
    expect(error).toBeInstanceOf(LeaseHeldError);
    expect(error.name).toBe('LeaseHeldError');
    expect((error as LeaseHeldError).transient).toBe(false);
    expect((error as LeaseHeldError).holder).toBe('run-a');
    expect(error.message).toContain('run-a');
    expect((error as LeaseHeldError).expiresAt.getTime()).toBe(held.expiresAt.getTime());
    expect((await leaseRow(db))?.owner).toBe('run-a');

    // Once released, the other run may take it.
    expect(await releaseLease(db.client, 'run-b')).toBe(false);
    expect(await releaseLease(db.client, 'run-a')).toBe(true);
    expect((await acquireLease(db.client, 'run-b', 600)).owner).toBe('run-b');
  });

  it('can be taken over once expired, and the old holder then fails with LeaseLostError without changing anything', async () => {
    const db = await freshDatabase();
    await seedDemoDatabase(db.client, 200);
    await startRun(db.client, 'run-a');
    await db.pool.query(`UPDATE emc.lease SET expires_at = now() - interval '1 second'`);
    expect(await currentLease(db.client)).toBeUndefined();

    const taken = await acquireLease(db.client, 'run-b', 600);
    expect(taken.owner).toBe('run-b');
    expect((await leaseRow(db))?.owner).toBe('run-b');

    const before = await snapshot(db);
    const error = await rejectionOf(expand(runAs(db, 'run-a'), catalog));
    expect(error).toBeInstanceOf(LeaseLostError);
    expect(error.message).toContain('run-a');
    expect(error.message).toContain('run-b');
    expect(await snapshot(db)).toEqual(before);

    // The new holder carries on normally.
    const result = await expand(runAs(db, 'run-b'), catalog);
    expect(result.versionAfter).toBe('bexar_expand03');
  });

  it('expires after a short ttl and can then be taken by another run', async () => {
    const db = await freshDatabase();
    await ensureStateSchema(db.client);
    await acquireLease(db.client, 'short-lived', 1);
    await expect(acquireLease(db.client, 'run-b', 600)).rejects.toBeInstanceOf(LeaseHeldError);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect((await acquireLease(db.client, 'run-b', 600)).owner).toBe('run-b');
  });

  it('is extended by every step and by re-acquiring it as its owner, keeping acquired_at', async () => {
    const db = await freshDatabase();
    await seedDemoDatabase(db.client, 100);
    const ctx = await startRun(db.client, 'run-a', { leaseTtlSeconds: 600 });
    const first = (await leaseRow(db))!;

    await db.pool.query(`UPDATE emc.lease SET expires_at = now() + interval '5 seconds'`);
    await expand(ctx, catalog);
    const afterSteps = (await leaseRow(db))!;
    expect(afterSteps.secs_left).toBeGreaterThan(590);

    await db.pool.query(`UPDATE emc.lease SET expires_at = now() + interval '5 seconds'`);
    await migrate(ctx, catalog);
    expect((await leaseRow(db))!.secs_left).toBeGreaterThan(590);

    await db.pool.query(`UPDATE emc.lease SET expires_at = now() + interval '5 seconds'`);
    const renewed = await acquireLease(db.client, 'run-a', 300);
    const row = (await leaseRow(db))!;
    expect(row.secs_left).toBeGreaterThan(290);
    expect(renewed.expiresAt.getTime()).toBe(row.expires_at.getTime());
    expect(row.acquired_at.getTime()).toBe(first.acquired_at.getTime());
  });

  it('is required by every phase: a run without it fails with LeaseLostError and the database is unchanged', async () => {
    const db = await freshDatabase();
    await seedDemoDatabase(db.client, 300);
    const holder = await startRun(db.client, 'holder', { batchSize: 100 });
    const intruder = runAs(db, 'intruder');
    const refused = async (call: () => Promise<unknown>) => {
      const before = await snapshot(db);
      const error = await rejectionOf(call());
      expect(error).toBeInstanceOf(LeaseLostError);
      expect(error.message).toContain('intruder');
      expect(error.message).toContain('holder');
      expect(await snapshot(db)).toEqual(before);
    };

    await refused(() => expand(intruder, catalog));
    await expand(holder, catalog);
    await refused(() => migrate(intruder, catalog));
    // Half-way through a migration: one short call of paused batches.
    const slow = { ...holder, settings: { ...holder.settings, batchSize: 20, batchPauseMs: 150, migrateBudgetMs: 1000 } };
    const partial = await migrate(slow, catalog);
    expect(partial.finished).toBe(false);
    expect(partial.steps[0]).toMatchObject({ stepId: 'bexar_migrate01', finished: false });
    expect(partial.steps[0]!.rowsDone).toBeGreaterThan(0);
    await refused(() => migrate(intruder, catalog));
    await migrateToEnd(holder, catalog);
    await refused(() => contract(intruder, catalog, undefined, { drainConfirmed: true }));

    // Rows the old release wrote without the trigger after migrate finished: a migrate call would reopen the step.
    const raw = await db.pool.connect();
    try {
      await raw.query(`SET session_replication_role = replica`);
      await raw.query(`INSERT INTO images (name, owner, is_public) VALUES ('late', 'tenant-1', true)`);
    } finally {
      await raw.query(`RESET session_replication_role`);
      raw.release();
    }
    await refused(() => migrate(intruder, catalog));

    // With no lease at all, the message says so.
    await releaseLease(db.client, 'holder');
    const before = await snapshot(db);
    const error = await rejectionOf(migrate(intruder, catalog));
    expect(error).toBeInstanceOf(LeaseLostError);
    expect(error.message).toMatch(/intruder does not hold the upgrade lease \(it expired or was released\)/);
    expect(await snapshot(db)).toEqual(before);
  });
});
