import { afterEach, describe, expect, it } from 'vitest';
import {
  contract,
  expand,
  LeaseBusyError,
  LeaseLostError,
  loadCatalog,
  LockTimeoutError,
  migrate,
  PhaseGateError,
  PgSqlClient,
  plan,
  readHistory,
  StepFailedError,
  type EngineEvent,
  type RunContext,
} from '../lambdas/core/index.ts';
import { writeMigrations } from './support/catalog-fixtures.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { migrateToEnd, startRun } from './support/engine.ts';
import {
  armPause,
  disarmPause,
  engineState,
  installPause,
  killEngineBackendWhenSleeping,
  publicSchema,
  rejectionOf,
  tableRows,
} from './support/engine-faults.ts';
import { HookedSqlClient } from './support/hooked-client.ts';

const databases: TestDatabase[] = [];
const clients: PgSqlClient[] = [];
async function freshDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  databases.push(db);
  return db;
}
afterEach(async () => {
  for (const client of clients.splice(0)) await client.close();
  for (const db of databases.splice(0)) await db.drop();
});

function recording(ctx: RunContext): { ctx: RunContext; events: EngineEvent[] } {
  const events: EngineEvent[] = [];
  return { ctx: { ...ctx, onEvent: (e) => events.push(e) }, events };
}

/** `nums` (id 1..rows, v, updated_count) and a keyset step that doubles v into a new column, counting each update. */
async function numsDatabase(rows: number, migrateSql: string, client?: (db: TestDatabase) => PgSqlClient) {
  const db = await freshDatabase();
  await installPause(db.pool);
  await db.pool.query(`CREATE TABLE nums (id bigint PRIMARY KEY, v int NOT NULL, updated_count int NOT NULL DEFAULT 0)`);
  await db.pool.query(`INSERT INTO nums (id, v) SELECT g, g + 1000 FROM generate_series(1, $1::int) g`, [rows]);
  const catalog = await loadCatalog(
    writeMigrations({
      'r1/expand01_add_doubled.sql': 'ALTER TABLE nums ADD COLUMN doubled int;\n',
      'r1/migrate01_double.sql': migrateSql,
    }),
  );
  const engineClient = client ? client(db) : db.client;
  return { db, catalog, engineClient };
}

const KEYSET_WITH_PAUSE =
  '-- emc:keyset table=nums key=id\n' +
  '-- emc:pending SELECT count(*) FROM nums WHERE doubled IS NULL\n' +
  '-- No "doubled IS NULL" guard on purpose: a batch run twice would count its rows twice.\n' +
  'UPDATE nums SET doubled = v * 2, updated_count = updated_count + 1\n' +
  "WHERE id BETWEEN :from_key AND :to_key AND testctl.pause_at('batch', id = 250);\n";

function killable(db: TestDatabase): PgSqlClient {
  const client = new PgSqlClient(db.url);
  clients.push(client);
  return client;
}

async function numsSummary(db: TestDatabase) {
  const result = await db.pool.query<{ id: string; doubled: number | null; updated_count: number; v: number }>(
    `SELECT id, v, doubled, updated_count FROM nums ORDER BY id`,
  );
  return result.rows;
}

async function progressOf(db: TestDatabase, stepId: string) {
  const result = await db.pool.query(
    `SELECT cursor, rows_done::int AS rows_done, batches::int AS batches, finished, pass FROM emc.migrate_progress WHERE step_id = $1`,
    [stepId],
  );
  return result.rows[0];
}

/** The statement that read the step's progress before its batches: its start (`emc.start_migration`) or a re-read. */
const progressRead = (previous: string | undefined) => /^\s*SELECT\b[\s\S]*\b(migrate_progress|start_migration)\b/.test(previous ?? '');

describe('keyset batches', () => {
  it('lose nothing and repeat nothing when the connection dies in the middle of a batch', async () => {
    const { db, catalog, engineClient } = await numsDatabase(500, KEYSET_WITH_PAUSE, killable);
    const ctx = await startRun(engineClient, 'crash-run', { batchSize: 100 });
    await expand(ctx, catalog);

    await armPause(db.pool, 'batch');
    const running = rejectionOf(migrate(ctx, catalog));
    // The whole batch is one statement (emc.run_batch); it sleeps inside the user's UPDATE of the third batch.
    expect(await killEngineBackendWhenSleeping(db.pool)).toContain('emc.run_batch');
    const error = await running;
    expect(error).toBeInstanceOf(StepFailedError);
    expect((error as StepFailedError).stepId).toBe('r1_migrate01');
    expect((error as StepFailedError).sqlState).toBe('57P01');

    // Two batches committed with their cursor; the third left no trace, neither in the rows nor in the cursor.
    expect(await progressOf(db, 'r1_migrate01')).toEqual({ cursor: '200', rows_done: 200, batches: 2, finished: false, pass: 1 });
    for (const row of await numsSummary(db)) {
      const done = Number(row.id) <= 200;
      expect([row.id, row.updated_count, row.doubled]).toEqual([row.id, done ? 1 : 0, done ? row.v * 2 : null]);
    }
    const history = await readHistory(db.client, 'crash-run');
    expect(history.at(-1)).toMatchObject({ stepId: 'r1_migrate01', outcome: 'failed' });
    expect(history.at(-1)!.error).toMatch(/terminat/i);

    await disarmPause(db.pool, 'batch');
    const results = await migrateToEnd(ctx, catalog);
    expect(results.reduce((n, r) => n + r.rowsThisCall, 0)).toBe(300);
    const rows = await numsSummary(db);
    expect(rows).toHaveLength(500);
    for (const row of rows) expect([row.id, row.updated_count, row.doubled]).toEqual([row.id, 1, row.v * 2]);
    expect(await progressOf(db, 'r1_migrate01')).toMatchObject({ rows_done: 500, finished: true });
  });

  it('lose nothing and repeat nothing when the connection dies after a batch moved its cursor, before the commit', async () => {
    const { db, catalog, engineClient } = await numsDatabase(500, KEYSET_WITH_PAUSE, killable);
    const ctx = await startRun(engineClient, 'commit-crash-run', { batchSize: 100 });
    await expand(ctx, catalog);
    // Stall the batch's transaction right after its cursor update (the last write before COMMIT) for rows 201-300.
    await db.pool.query(`
      CREATE FUNCTION testctl.pause_progress() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM testctl.pause_at('commit', NEW.cursor = '300'); RETURN NEW; END $$`);
    await db.pool.query(
      `CREATE TRIGGER pause_progress AFTER UPDATE ON emc.migrate_progress FOR EACH ROW EXECUTE FUNCTION testctl.pause_progress()`,
    );

    await armPause(db.pool, 'commit');
    const running = rejectionOf(migrate(ctx, catalog));
    // Inside the batch's one statement (emc.run_batch), after its cursor update: its last write.
    expect(await killEngineBackendWhenSleeping(db.pool)).toContain('emc.run_batch');
    expect(await running).toBeInstanceOf(StepFailedError);
    expect(await progressOf(db, 'r1_migrate01')).toMatchObject({ cursor: '200', rows_done: 200, batches: 2 });
    const counts = await db.pool.query(
      `SELECT count(*) FILTER (WHERE updated_count = 1)::int AS once, count(*) FILTER (WHERE updated_count = 0)::int AS never,
              max(id) FILTER (WHERE updated_count = 1)::int AS last_done FROM nums`,
    );
    expect(counts.rows[0]).toEqual({ once: 200, never: 300, last_done: 200 });

    await disarmPause(db.pool, 'commit');
    await migrateToEnd(ctx, catalog);
    for (const row of await numsSummary(db)) expect([row.id, row.updated_count, row.doubled]).toEqual([row.id, 1, row.v * 2]);
  });

  it('apply a batch once when two runners of one run race on it: the one whose cursor is stale is refused', async () => {
    // Two invocations of one run (one lease owner: a retried task while the first still runs). B reads the step's
    // cursor, then A commits the batch from that cursor, then B runs the same range: the cursor guard of its progress
    // update must refuse it, rolling back its writes.
    const { db, catalog } = await numsDatabase(300, KEYSET_WITH_PAUSE);
    const ctx = await startRun(db.client, 'raced-run', { batchSize: 100 });
    await expand(ctx, catalog);
    // A runs exactly one batch: a spent budget still runs the first one.
    const runnerA: RunContext = { ...ctx, settings: { ...ctx.settings, migrateBudgetMs: 0 } };
    // B pauses before the first statement of the transaction after the one that read its progress (its batch's: no
    // lock taken yet), once its step has started.
    let armed = false;
    let raced = false;
    const runnerB: RunContext = {
      ...ctx,
      client: new HookedSqlClient(db.client, async ({ indexInTransaction, previous }) => {
        if (!armed || raced || indexInTransaction !== 0 || !progressRead(previous)) return;
        raced = true;
        expect((await migrate(runnerA, catalog)).batchesThisCall).toBe(1);
      }),
      onEvent: (e) => {
        if (e.type === 'step-started') armed = true;
      },
    };

    const error = await rejectionOf(migrate(runnerB, catalog));

    expect(raced).toBe(true);
    expect(error).toBeInstanceOf(StepFailedError);
    expect((error as StepFailedError).stepId).toBe('r1_migrate01');
    expect(error.message).toContain('its migrate progress was changed by another run during a batch');
    expect(await progressOf(db, 'r1_migrate01')).toEqual({ cursor: '100', rows_done: 100, batches: 1, finished: false, pass: 1 });
    for (const row of await numsSummary(db)) {
      const done = Number(row.id) <= 100;
      expect([row.id, row.updated_count, row.doubled]).toEqual([row.id, done ? 1 : 0, done ? row.v * 2 : null]);
    }
    // The run goes on from A's cursor: every row migrated exactly once.
    await migrateToEnd(ctx, catalog);
    for (const row of await numsSummary(db)) expect([row.id, row.updated_count, row.doubled]).toEqual([row.id, 1, row.v * 2]);
    expect(await progressOf(db, 'r1_migrate01')).toMatchObject({ rows_done: 300, finished: true });
  });

  it('refuse a batch of the old file once another runner took the step over with an edited one, cursor unchanged', async () => {
    // A task retried on a redeployed bundle whose migrate file was edited, while the first attempt still runs: before
    // any batch committed, the step takes the new file's checksum; the old file's runner still holds the old cursor
    // (unchanged) and must be refused by the checksum guard of its progress update, not apply the old statement.
    const { db, catalog } = await numsDatabase(300, KEYSET_WITH_PAUSE);
    const edited = await loadCatalog(
      writeMigrations({
        'r1/expand01_add_doubled.sql': 'ALTER TABLE nums ADD COLUMN doubled int;\n',
        'r1/migrate01_double.sql': KEYSET_WITH_PAUSE.replace('doubled = v * 2', 'doubled = v * 3'),
      }),
    );
    const ctx = await startRun(db.client, 'redeployed-run', { batchSize: 100 });
    await expand(ctx, catalog);
    // A, with the edited file, gets as far as recording its checksum, then dies before its first batch.
    let armedA = false;
    const runnerA: RunContext = {
      ...ctx,
      client: new HookedSqlClient(db.client, ({ indexInTransaction, previous }) => {
        if (armedA && indexInTransaction === 0 && progressRead(previous)) throw new Error('runner A stopped before its batch');
      }),
      onEvent: (e) => {
        if (e.type === 'step-started') armedA = true;
      },
    };
    let armedB = false;
    let raced = false;
    const runnerB: RunContext = {
      ...ctx,
      client: new HookedSqlClient(db.client, async ({ indexInTransaction, previous }) => {
        if (!armedB || raced || indexInTransaction !== 0 || !progressRead(previous)) return;
        raced = true;
        expect((await rejectionOf(migrate(runnerA, edited))).message).toContain('runner A stopped before its batch');
      }),
      onEvent: (e) => {
        if (e.type === 'step-started') armedB = true;
      },
    };

    const error = await rejectionOf(migrate(runnerB, catalog));

    expect(raced).toBe(true);
    expect(error).toBeInstanceOf(StepFailedError);
    expect(error.message).toContain('its migrate progress was changed by another run during a batch');
    const progress = await db.pool.query(`SELECT cursor, batches::int, checksum FROM emc.migrate_progress WHERE step_id = 'r1_migrate01'`);
    expect(progress.rows).toEqual([{ cursor: null, batches: 0, checksum: edited.steps.find((s) => s.id === 'r1_migrate01')!.checksum }]);
    for (const row of await numsSummary(db)) expect([row.id, row.updated_count, row.doubled]).toEqual([row.id, 0, null]);
  });

  it('stop when the time budget is spent, report progress and resume from the cursor on the next call', async () => {
    const { db, catalog } = await numsDatabase(
      50,
      '-- emc:keyset table=nums key=id\n' +
        '-- Each batch takes 200 ms. No pending query: remaining rows are estimated from table statistics.\n' +
        'WITH pause AS (SELECT pg_sleep(0.2))\n' +
        'UPDATE nums SET doubled = v * 2, updated_count = updated_count + 1 FROM pause\n' +
        'WHERE id BETWEEN :from_key AND :to_key;\n',
    );
    await db.pool.query(`ANALYZE nums`);
    const ctx = await startRun(db.client, 'budget-run', { batchSize: 10, migrateBudgetMs: 1000 });
    await expand(ctx, catalog);

    const first = await migrate(ctx, catalog);
    expect(first.finished).toBe(false);
    expect(first.durationMs).toBeLessThan(2_000);
    const progress = first.steps[0]!;
    expect(progress.finished).toBe(false);
    expect(progress.rowsDone).toBeGreaterThanOrEqual(10);
    expect(progress.rowsDone).toBeLessThan(50);
    expect(progress.rowsDone % 10).toBe(0);
    expect(progress.cursor).toBe(String(progress.rowsDone));
    expect(progress.batches).toBe(progress.rowsDone / 10);
    expect(progress.remaining).toBe(50 - progress.rowsDone);
    expect(first.rowsThisCall).toBe(progress.rowsDone);
    expect(await readHistory(db.client, 'budget-run')).toContainEqual(
      expect.objectContaining({ stepId: 'r1_migrate01', outcome: 'continued', rowsAffected: progress.rowsDone }),
    );
    const updated = await db.pool.query(`SELECT max(id)::int AS last, count(*)::int AS n FROM nums WHERE updated_count > 0`);
    expect(updated.rows[0]).toEqual({ last: progress.rowsDone, n: progress.rowsDone });

    const rest = await migrateToEnd(ctx, catalog);
    expect(rest.reduce((n, r) => n + r.rowsThisCall, 0)).toBe(50 - progress.rowsDone);
    expect(rest.at(-1)!.steps[0]).toMatchObject({ rowsDone: 50, remaining: 0, finished: true, cursor: '50' });
    for (const row of await numsSummary(db)) expect([row.id, row.updated_count]).toEqual([row.id, 1]);
  });

  it('never start a later step while an earlier one is unfinished, even with time left in the call', async () => {
    const db = await freshDatabase();
    await db.pool.query(`CREATE TABLE nums (id bigint PRIMARY KEY, v int NOT NULL)`);
    await db.pool.query(`INSERT INTO nums (id, v) SELECT g, g FROM generate_series(1, 100) g`);
    const catalog = await loadCatalog(
      writeMigrations({
        'r1/expand01_add_columns.sql': 'ALTER TABLE nums ADD COLUMN doubled int;\nALTER TABLE nums ADD COLUMN tripled int;\n',
        'r1/migrate01_double.sql':
          '-- emc:keyset table=nums key=id\n' +
          'WITH pause AS (SELECT pg_sleep(0.15))\n' +
          'UPDATE nums SET doubled = v * 2 FROM pause WHERE id BETWEEN :from_key AND :to_key;\n',
        // Depends on migrate01: run before it finished, it would leave rows without tripled and still finish.
        'r1/migrate02_triple.sql':
          '-- emc:repeat-until-zero\n' +
          '-- emc:batch-size 100\n' +
          'UPDATE nums SET tripled = doubled + v\n' +
          'WHERE id = ANY (ARRAY(SELECT id FROM nums WHERE tripled IS NULL AND doubled IS NOT NULL LIMIT :batch_size));\n',
      }),
    );
    // Each migrate01 batch takes 150 ms, so a call stops with up to 150 ms left: enough for all of migrate02.
    const ctx = await startRun(db.client, 'order-run', { batchSize: 10, migrateBudgetMs: 1000, batchPauseMs: 0 });
    await expand(ctx, catalog);
    const first = await migrate(ctx, catalog);
    expect(first.finished).toBe(false);
    expect(first.steps.map((s) => [s.stepId, s.finished])).toEqual([
      ['r1_migrate01', false],
      ['r1_migrate02', false],
    ]);
    expect(first.steps[1]!.batches).toBe(0);
    const applied = await db.pool.query(`SELECT step_id FROM emc.applied_step WHERE phase = 'migrate'`);
    expect(applied.rows).toEqual([]);

    await migrateToEnd(ctx, catalog);
    const wrong = await db.pool.query(`SELECT count(*)::int AS n FROM nums WHERE tripled IS DISTINCT FROM 3 * v`);
    expect(wrong.rows[0].n).toBe(0);
    expect((await plan(db.client, catalog)).nextPhase).toBeNull();
  });

  it('pause batchPauseMs between every two batches, up to the end of the call', async () => {
    const { db, catalog } = await numsDatabase(400, KEYSET_WITH_PAUSE);
    const { ctx, events } = recording(
      await startRun(db.client, 'pause-run', { batchSize: 5, batchPauseMs: 200, migrateBudgetMs: 1000 }),
    );
    await expand(ctx, catalog);
    const result = await migrate(ctx, catalog);
    expect(result.finished).toBe(false);
    // At most one batch per 200 ms of budget: never a burst of unpaused batches near the deadline.
    expect(result.batchesThisCall).toBeGreaterThanOrEqual(2);
    expect(result.batchesThisCall).toBeLessThanOrEqual(6);
    expect(events.filter((e) => e.type === 'batch')).toHaveLength(result.batchesThisCall);
  });

  it('give up a batch after lock_timeout behind an application lock (LockTimeoutError, progress unchanged)', async () => {
    const { db, catalog } = await numsDatabase(300, KEYSET_WITH_PAUSE);
    const ctx = await startRun(db.client, 'lock-run', { batchSize: 100, lockTimeoutMs: 200 });
    await expand(ctx, catalog);

    const app = await db.pool.connect();
    try {
      // An application transaction holds a row of the second batch (ids 101-200).
      await app.query('BEGIN');
      await app.query('SELECT * FROM nums WHERE id = 150 FOR UPDATE');
      const started = Date.now();
      const error = await rejectionOf(migrate(ctx, catalog));
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(error).toBeInstanceOf(LockTimeoutError);
      expect((error as LockTimeoutError).transient).toBe(true);
      expect((error as LockTimeoutError).stepId).toBe('r1_migrate01');
      expect(error.message).toContain('r1/migrate01_double.sql');
      // The first batch committed; the timed-out one left neither rows nor cursor behind.
      expect(await progressOf(db, 'r1_migrate01')).toEqual({ cursor: '100', rows_done: 100, batches: 1, finished: false, pass: 1 });
      for (const row of await numsSummary(db)) expect([row.id, row.updated_count]).toEqual([row.id, Number(row.id) <= 100 ? 1 : 0]);
      // The application's transaction is unharmed.
      await app.query(`UPDATE nums SET v = v WHERE id = 150`);
      await app.query('COMMIT');
    } finally {
      app.release();
    }
    await migrateToEnd(ctx, catalog);
    for (const row of await numsSummary(db)) expect([row.id, row.updated_count]).toEqual([row.id, 1]);
  });

  it('cancel a batch that runs longer than batchStatementTimeoutMs, progress unchanged', async () => {
    const { db, catalog } = await numsDatabase(300, KEYSET_WITH_PAUSE);
    const ctx = await startRun(db.client, 'timeout-run', { batchSize: 100, batchStatementTimeoutMs: 1000 });
    await expand(ctx, catalog);
    await armPause(db.pool, 'batch');
    const started = Date.now();
    const error = await rejectionOf(migrate(ctx, catalog));
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(error).toBeInstanceOf(StepFailedError);
    expect((error as StepFailedError).sqlState).toBe('57014');
    expect(await progressOf(db, 'r1_migrate01')).toMatchObject({ cursor: '200', rows_done: 200 });
    const done = await db.pool.query(`SELECT count(*)::int AS n FROM nums WHERE updated_count > 0`);
    expect(done.rows[0].n).toBe(200);
  });
});

describe('the batch statement refuses a run that cannot show its lease, writing nothing', () => {
  /** A run of 100-row batches whose client calls `before` once, right before the second batch's statement. */
  async function beforeSecondBatch(before: (db: TestDatabase) => Promise<void>) {
    const { db, catalog } = await numsDatabase(300, KEYSET_WITH_PAUSE);
    let batches = 0;
    const client = new HookedSqlClient(db.client, async (s) => {
      if (s.sql.includes('FROM emc.run_batch(') && ++batches === 2) await before(db);
    });
    const ctx = await startRun(client, 'batch-run', { batchSize: 100, lockTimeoutMs: 200 });
    await expand(ctx, catalog);
    const error = await rejectionOf(migrate(ctx, catalog));
    expect(await progressOf(db, 'r1_migrate01')).toEqual({ cursor: '100', rows_done: 100, batches: 1, finished: false, pass: 1 });
    for (const row of await numsSummary(db)) expect([row.id, row.updated_count]).toEqual([row.id, Number(row.id) <= 100 ? 1 : 0]);
    return { db, error };
  }

  it('a run whose lease another run took over: LeaseLostError naming the holder', async () => {
    const { error } = await beforeSecondBatch(async (db) => {
      await db.pool.query(`UPDATE emc.lease SET owner = 'other-run', expires_at = now() + interval '1 hour'`);
    });
    expect(error).toBeInstanceOf(LeaseLostError);
    expect(error.message).toMatch(/^Run batch-run does not hold the upgrade lease: other-run holds it until /);
  });

  it('a run whose lease row stays locked past lock_timeout: LeaseBusyError, transient', async () => {
    const holder = { release: async () => {} };
    const { error } = await beforeSecondBatch(async (db) => {
      const app = await db.pool.connect();
      await app.query('BEGIN');
      await app.query('SELECT * FROM emc.lease FOR UPDATE');
      holder.release = async () => {
        await app.query('ROLLBACK');
        app.release();
      };
    });
    await holder.release();
    expect(error).toBeInstanceOf(LeaseBusyError);
    expect((error as LeaseBusyError).transient).toBe(true);
    expect(error.message).toContain('200 ms lock timeout');
  });
});

describe('adaptive batch sizes', () => {
  it('grow on a fast table toward targetBatchMs, at most fourfold per batch', async () => {
    const { db, catalog } = await numsDatabase(10_000, KEYSET_WITH_PAUSE);
    // A target far above what these batches take on any machine: each batch may be four times the one before.
    const { ctx, events } = recording(await startRun(db.client, 'adaptive-run', { batchSize: 100, targetBatchMs: 5000 }));
    await expand(ctx, catalog);
    const result = await migrate(ctx, catalog);
    expect(result.finished).toBe(true);
    const sizes = events.flatMap((e) => (e.type === 'batch' ? [e.batchSize] : []));
    // 100 + 400 + 1,600 + 6,400 = 8,500 keys: the fifth batch (25,600 asked) found the table's last 1,500 keys.
    expect(sizes).toEqual([100, 400, 1600, 6400, 25_600]);
    expect(await progressOf(db, 'r1_migrate01')).toMatchObject({ cursor: '10000', rows_done: 10_000, batches: 5, finished: true });
    for (const row of await numsSummary(db)) expect([row.id, row.updated_count]).toEqual([row.id, 1]);
  });
});

describe('the pending-query gate before contract', () => {
  it('refuses contract while old-release rows wait, names the step, and the next migrate sweeps them', async () => {
    const db = await freshDatabase();
    await db.pool.query(`CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL)`);
    await db.pool.query(`INSERT INTO users SELECT g, 'User' || g || '@Example.com' FROM generate_series(1, 120) g`);
    const catalog = await loadCatalog(
      writeMigrations({
        'r1/expand01_add_email_lower.sql': 'ALTER TABLE users ADD COLUMN email_lower text;\n',
        'r1/migrate01_fill_email_lower.sql':
          '-- emc:keyset table=users key=id\n' +
          '-- emc:pending SELECT count(*) FROM users WHERE email_lower IS NULL\n' +
          'UPDATE users SET email_lower = lower(email) WHERE id BETWEEN :from_key AND :to_key AND email_lower IS NULL;\n',
        'r1/contract01_drop_email.sql':
          'ALTER TABLE users ALTER COLUMN email_lower SET NOT NULL;\n' + 'ALTER TABLE users DROP COLUMN email;\n',
      }),
    );
    const { ctx, events } = recording(await startRun(db.client, 'sweep-run', { batchSize: 50 }));
    await expand(ctx, catalog);
    await migrateToEnd(ctx, catalog);
    expect(await progressOf(db, 'r1_migrate01')).toMatchObject({ finished: true, rows_done: 120 });

    // The old release, which knows nothing of email_lower, keeps writing after the migration finished.
    await db.pool.query(`DELETE FROM users WHERE id = 20`);
    await db.pool.query(`INSERT INTO users (id, email) VALUES (500, 'Late@Example.com'), (20, 'Early@Example.com')`);

    const before = { schema: await publicSchema(db.pool), rows: await tableRows(db.pool, 'users'), engine: await engineState(db.pool) };
    const error = await rejectionOf(contract(ctx, catalog, undefined, { drainConfirmed: true }));
    expect(error).toBeInstanceOf(PhaseGateError);
    expect((error as PhaseGateError).reasons).toEqual([{ kind: 'pending-rows', stepId: 'r1_migrate01', rows: 2 }]);
    expect(error.message).toContain('r1_migrate01 finished, but its pending query finds 2 rows still to migrate');
    expect({ schema: await publicSchema(db.pool), rows: await tableRows(db.pool, 'users'), engine: await engineState(db.pool) }).toEqual(before);
    expect((await plan(db.client, catalog)).contractBlockedBy.join('\n')).toContain('r1_migrate01');

    const swept = await migrate(ctx, catalog);
    expect(swept.finished).toBe(true);
    expect(swept.stepsFinished).toEqual(['r1_migrate01']);
    expect(swept.rowsThisCall).toBe(2);
    expect(events).toContainEqual({ type: 'migrate-pass-restarted', stepId: 'r1_migrate01', pending: 2, pass: 1 });

    const done = await contract(ctx, catalog, undefined, { drainConfirmed: true });
    expect(done.versionAfter).toBe('r1_expand01, r1_contract01');
    const late = await db.pool.query(`SELECT id::int, email_lower FROM users WHERE id IN (20, 500) ORDER BY id`);
    expect(late.rows).toEqual([
      { id: 20, email_lower: 'early@example.com' },
      { id: 500, email_lower: 'late@example.com' },
    ]);
  });
});
