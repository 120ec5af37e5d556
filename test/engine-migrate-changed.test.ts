import { afterEach, describe, expect, it } from 'vitest';
import {
  expand,
  InputError,
  loadCatalog,
  migrate,
  MigrateStepChangedError,
  plan,
  readHistory,
  releaseLease,
  type Catalog,
} from '../lambdas/core/index.ts';
import { ensureStateSchema } from '../lambdas/core/state/schema.ts';
import { startUpgrade } from '../lambdas/core/workflow/upgrade-plan.ts';
import { writeMigrations } from './support/catalog-fixtures.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { dumpDatabase } from './support/database-dump.ts';
import { migrateToEnd, startRun } from './support/engine.ts';
import { rejectionOf } from './support/engine-faults.ts';

/**
 * A migrate file edited after some of its batches committed: resuming would run the new statement from the old one's
 * cursor. It is refused like drift until the file is restored or the operator restarts the step (`restartSteps`).
 */

const databases: TestDatabase[] = [];
afterEach(async () => {
  for (const db of databases.splice(0)) await db.drop();
});

const stepSql = (factor: number) =>
  '-- emc:keyset table=nums key=id\n' +
  `UPDATE nums SET result = v * ${factor}, times = times + 1 FROM (SELECT pg_sleep(0.05)) pause WHERE id BETWEEN :from_key AND :to_key;\n`;

function catalogWith(factor: number): Promise<Catalog> {
  return loadCatalog(
    writeMigrations({
      'r1/expand01_add_result.sql': 'ALTER TABLE nums ADD COLUMN result int;\n',
      'r1/migrate01_fill.sql': stepSql(factor),
    }),
  );
}

/** 40 rows, the step run for one short call (a few 5-row batches), then the run's lease released. */
async function partlyMigrated() {
  const db = await createTestDatabase();
  databases.push(db);
  await db.pool.query(`CREATE TABLE nums (id int PRIMARY KEY, v int NOT NULL, times int NOT NULL DEFAULT 0)`);
  await db.pool.query(`INSERT INTO nums (id, v) SELECT g, g FROM generate_series(1, 40) g`);
  const original = await catalogWith(2);
  const ctx = await startRun(db.client, 'first-run', { batchSize: 5, migrateBudgetMs: 1000, batchPauseMs: 300 });
  await expand(ctx, original);
  const first = await migrate(ctx, original);
  expect(first.finished).toBe(false);
  await releaseLease(db.client, ctx.runId);
  return { db, original, ctx, rowsDone: first.steps[0]!.rowsDone, batches: first.steps[0]!.batches };
}

async function timesAndResults(db: TestDatabase) {
  const rows = await db.pool.query<{ id: number; v: number; result: number | null; times: number }>(`SELECT id, v, result, times FROM nums ORDER BY id`);
  return rows.rows;
}

describe('a migrate file changed after some batches committed', () => {
  it('is refused by plan and migrate with both checksums and the rows done, the database unchanged', async () => {
    const { db, original, ctx, rowsDone, batches } = await partlyMigrated();
    const edited = await catalogWith(3);
    const before = await dumpDatabase(db.pool, ['nums']);

    const byPlan = await rejectionOf(plan(db.client, edited));
    const byMigrate = await rejectionOf(migrate({ ...ctx, runId: 'second-run' }, edited));

    for (const error of [byPlan, byMigrate]) {
      expect(error).toBeInstanceOf(MigrateStepChangedError);
      expect(error.message).toContain(
        `r1_migrate01 (r1/migrate01_fill.sql): ${rowsDone} rows in ${batches} batches done with checksum ${original.steps[1]!.checksum}, file now has ${edited.steps[1]!.checksum}`,
      );
      expect((error as MigrateStepChangedError).nextAction).toContain('"restartSteps": ["r1_migrate01"]');
    }
    expect(await dumpDatabase(db.pool, ['nums'])).toEqual(before);
  });

  it('resumes where it stopped once the file is restored', async () => {
    const { db, original, ctx } = await partlyMigrated();
    await rejectionOf(migrate(ctx, await catalogWith(3)));
    const again = await startRun(db.client, 'restored-run', { batchSize: 5, batchPauseMs: 0 });
    await migrateToEnd(again, original);
    expect((await timesAndResults(db)).map((r) => [r.result, r.times])).toEqual((await timesAndResults(db)).map((r) => [r.v * 2, 1]));
  });

  it('restarts from the first key with the new file when the execution input names it in restartSteps, recorded in history', async () => {
    const { db, rowsDone, batches } = await partlyMigrated();
    const edited = await catalogWith(3);

    const upgrade = await startUpgrade(db.client, edited, { runId: 'restart-run', input: { restartSteps: ['r1_migrate01'], settings: { batchSize: 5, batchPauseMs: 0 } } });
    expect(upgrade.restartSteps).toEqual(['r1_migrate01']);
    const ctx = { client: db.client, runId: upgrade.runId, settings: upgrade.settings };
    // Every call of the execution passes the same restartSteps: only the first resets the step.
    const calls = await migrateToEnd(ctx, edited, { restartSteps: upgrade.restartSteps });
    expect(calls.length).toBeGreaterThanOrEqual(1);

    expect((await timesAndResults(db)).every((r) => r.result === r.v * 3)).toBe(true);
    const history = await readHistory(db.client, 'restart-run');
    expect(history.filter((h) => h.outcome === 'restarted')).toEqual([
      expect.objectContaining({
        stepId: 'r1_migrate01',
        checksum: edited.steps[1]!.checksum,
        error: `restarted from its first key (restartSteps): ${rowsDone} rows in ${batches} batches had run with ${(await catalogWith(2)).steps[1]!.checksum}`,
      }),
    ]);
    expect(history.at(-1)).toMatchObject({ stepId: 'r1_migrate01', outcome: 'succeeded', rowsAffected: 40 });
  });

  it.each([
    { name: 'a step that is not a migrate step to run', restart: ['r1_migrate07'], edited: true, message: /"restartSteps": r1_migrate07 is not a migrate step still to run up to release r1/ },
    { name: 'a step whose file did not change', restart: ['r1_migrate01'], edited: false, message: /"restartSteps": r1_migrate01's file has not changed since its batches ran: nothing to restart/ },
  ])('refuses restartSteps naming $name (InputError, the database unchanged)', async ({ restart, edited, message }) => {
    const { db, original } = await partlyMigrated();
    const catalog = edited ? await catalogWith(3) : original;
    const before = await dumpDatabase(db.pool, ['nums']);
    const error = await rejectionOf(startUpgrade(db.client, catalog, { runId: 'bad-restart', input: { restartSteps: restart } }));
    expect(error).toBeInstanceOf(InputError);
    expect(error.message).toMatch(message);
    expect(await dumpDatabase(db.pool, ['nums'])).toEqual(before);
  });
});

describe('the state tables of an earlier release of the tool', () => {
  it('are upgraded in place, idempotently, and a step they record as partly run (no checksum) is refused', async () => {
    const db = await createTestDatabase();
    databases.push(db);
    await db.pool.query(`CREATE TABLE nums (id int PRIMARY KEY, v int NOT NULL, times int NOT NULL DEFAULT 0, result int)`);
    // The tables as release 1 of the state schema created them (no checksum, strategy or pass_rows; no "restarted").
    await db.pool.query(`
      CREATE SCHEMA emc;
      CREATE TABLE emc.version (singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), expand_step text, contract_step text,
                                composite text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
      CREATE TABLE emc.applied_step (step_id text PRIMARY KEY, release text NOT NULL,
                                     phase text NOT NULL CHECK (phase IN ('expand', 'migrate', 'contract')), number integer NOT NULL,
                                     checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), run_id text NOT NULL);
      CREATE TABLE emc.migrate_progress (step_id text PRIMARY KEY, cursor text, pass integer NOT NULL DEFAULT 1,
                                         rows_done bigint NOT NULL DEFAULT 0, keys_scanned bigint NOT NULL DEFAULT 0,
                                         batches bigint NOT NULL DEFAULT 0, finished boolean NOT NULL DEFAULT false,
                                         started_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now());
      CREATE TABLE emc.history (id bigserial PRIMARY KEY, run_id text NOT NULL, step_id text NOT NULL, phase text NOT NULL,
                                checksum text NOT NULL, started_at timestamptz NOT NULL, finished_at timestamptz, duration_ms bigint,
                                rows_affected bigint,
                                outcome text NOT NULL CHECK (outcome IN ('running', 'succeeded', 'continued', 'failed', 'interrupted')),
                                error text);
      CREATE INDEX history_step_idx ON emc.history (step_id, id);
      CREATE TABLE emc.lease (name text PRIMARY KEY, owner text NOT NULL, acquired_at timestamptz NOT NULL DEFAULT now(),
                              expires_at timestamptz NOT NULL);
    `);
    const catalog = await catalogWith(2);
    await db.pool.query(
      `INSERT INTO emc.applied_step (step_id, release, phase, number, checksum, run_id) VALUES ('r1_expand01', 'r1', 'expand', 1, $1, 'old');
       INSERT INTO emc.version (expand_step, composite) VALUES ('r1_expand01', 'r1_expand01');
       INSERT INTO emc.migrate_progress (step_id, cursor, rows_done, keys_scanned, batches) VALUES ('r1_migrate01', '10', 10, 10, 2);`.replace(
        '$1',
        `'${catalog.steps[0]!.checksum}'`,
      ),
    );

    // Read-only plan reads the old tables as they are.
    expect(await rejectionOf(plan(db.client, catalog))).toBeInstanceOf(MigrateStepChangedError);

    await ensureStateSchema(db.client);
    const upgraded = await dumpDatabase(db.pool);
    await ensureStateSchema(db.client);
    expect(await dumpDatabase(db.pool)).toEqual(upgraded);
    const columns = await db.pool.query(
      `SELECT column_name FROM information_schema.columns WHERE table_schema = 'emc' AND table_name = 'migrate_progress' ORDER BY ordinal_position`,
    );
    expect(columns.rows.map((r) => r.column_name)).toEqual(expect.arrayContaining(['checksum', 'strategy', 'pass_rows']));
    const progress = await db.pool.query(`SELECT cursor, rows_done::int, checksum FROM emc.migrate_progress`);
    expect(progress.rows).toEqual([{ cursor: '10', rows_done: 10, checksum: null }]);

    const error = await rejectionOf(migrate(await startRun(db.client, 'new-release'), catalog));
    expect(error).toBeInstanceOf(MigrateStepChangedError);
    expect(error.message).toContain('10 rows in 2 batches done with an unrecorded checksum (an earlier release of emc)');
  });

  it('get the batch function of this release in place of an older one', async () => {
    const db = await createTestDatabase();
    databases.push(db);
    await ensureStateSchema(db.client);
    const body = `SELECT prosrc FROM pg_proc WHERE oid = 'emc.run_batch'::regproc`;
    const current = (await db.pool.query(body)).rows[0].prosrc as string;
    // An earlier release's function under the same arguments (without the result column database_ms of version 4),
    // and its schema version.
    await db.pool.query(`
      DROP FUNCTION emc.run_batch;
      CREATE FUNCTION emc.run_batch(p_owner text, p_ttl_seconds integer, p_lock_timeout_ms integer,
          p_step text, p_checksum text, p_previous text, p_pass integer, p_batch_size integer,
          p_range_sql text, p_multi_key boolean, p_statement text,
          OUT ran boolean, OUT batch_rows bigint, OUT batch_keys integer, OUT cursor_after text, OUT last_of_pass boolean)
        LANGUAGE plpgsql AS $$ BEGIN ran := false; END $$;
      COMMENT ON SCHEMA emc IS 'emc state schema 2';
    `);
    await ensureStateSchema(db.client);
    expect((await db.pool.query(body)).rows[0].prosrc).toBe(current);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM pg_proc WHERE proname = 'run_batch'`)).rows[0].n).toBe(1);
  });

  it('get the functions of this release on a schema of the previous version, and a migrate step runs on them', async () => {
    const db = await createTestDatabase();
    databases.push(db);
    await ensureStateSchema(db.client);
    const functions = `SELECT proname, prosrc FROM pg_proc WHERE pronamespace = 'emc'::regnamespace ORDER BY proname`;
    const current = (await db.pool.query(functions)).rows;
    expect(current.map((f) => f.proname)).toEqual(['finish_migration', 'hold_lease', 'run_batch', 'start_migration']);
    // Version 3 had the batch function alone, renewing the lease itself and without database_ms.
    await db.pool.query(`
      DROP FUNCTION emc.start_migration, emc.finish_migration, emc.run_batch;
      CREATE FUNCTION emc.run_batch(p_owner text, p_ttl_seconds integer, p_lock_timeout_ms integer,
          p_step text, p_checksum text, p_previous text, p_pass integer, p_batch_size integer,
          p_range_sql text, p_multi_key boolean, p_statement text,
          OUT ran boolean, OUT batch_rows bigint, OUT batch_keys integer, OUT cursor_after text, OUT last_of_pass boolean)
        LANGUAGE plpgsql AS $$ BEGIN ran := false; END $$;
      DROP FUNCTION emc.hold_lease;
      COMMENT ON SCHEMA emc IS 'emc state schema 3';
    `);
    await ensureStateSchema(db.client);
    expect((await db.pool.query(functions)).rows).toEqual(current);

    await db.pool.query(`CREATE TABLE nums (id int PRIMARY KEY, v int NOT NULL, times int NOT NULL DEFAULT 0)`);
    await db.pool.query(`INSERT INTO nums (id, v) SELECT g, g FROM generate_series(1, 10) g`);
    const catalog = await catalogWith(2);
    const ctx = await startRun(db.client, 'upgraded-run', { batchSize: 5 });
    await expand(ctx, catalog);
    expect(await migrate(ctx, catalog)).toMatchObject({ finished: true, stepsFinished: ['r1_migrate01'], version: 'r1_expand01' });
    expect((await timesAndResults(db)).map((r) => [r.times, r.result])).toEqual(Array.from({ length: 10 }, (_, i) => [1, (i + 1) * 2]));
    expect((await readHistory(db.client)).map((h) => [h.stepId, h.outcome, h.rowsAffected])).toEqual([
      ['r1_expand01', 'succeeded', undefined],
      ['r1_migrate01', 'succeeded', 10],
    ]);
  });
});
