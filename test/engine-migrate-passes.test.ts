import { afterEach, describe, expect, it } from 'vitest';
import {
  expand,
  loadCatalog,
  MigrateRunawayError,
  PendingRowsRemainError,
  readHistory,
  type EngineEvent,
  type MigrateResult,
} from '../lambdas/core/index.ts';
import { writeMigrations } from './support/catalog-fixtures.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { migrateToEnd, startRun } from './support/engine.ts';
import { rejectionOf } from './support/engine-faults.ts';

/**
 * Passes that do not end on their own: a repeat-until-zero statement that keeps changing the same rows, and rows
 * left over at the end of a pass because the application holds them locked.
 */

const databases: TestDatabase[] = [];
afterEach(async () => {
  for (const db of databases.splice(0)) await db.drop();
});

async function tableWith(rows: number, migrateSql: string) {
  const db = await createTestDatabase();
  databases.push(db);
  await db.pool.query(`CREATE TABLE t (id int PRIMARY KEY, done boolean NOT NULL DEFAULT false, n int NOT NULL DEFAULT 0)`);
  await db.pool.query(`INSERT INTO t (id) SELECT g FROM generate_series(1, $1::int) g`, [rows]);
  const catalog = await loadCatalog(
    writeMigrations({ 'r1/expand01_add_copy.sql': 'CREATE TABLE copy (id int PRIMARY KEY);\n', 'r1/migrate01_step.sql': migrateSql }),
  );
  return { db, catalog };
}

describe('a repeat-until-zero step that never reaches zero', () => {
  it('fails once its pass changed more than twice the rows of its tables, naming the step and the cause', async () => {
    const { db, catalog } = await tableWith(
      10,
      '-- emc:repeat-until-zero\n' +
        '-- The WHERE does not leave out migrated rows: every batch changes the first three rows again.\n' +
        'UPDATE t SET n = n + 1 WHERE id = ANY (ARRAY(SELECT id FROM t ORDER BY id LIMIT :batch_size));\n',
    );
    const ctx = await startRun(db.client, 'runaway-run', { batchSize: 3, migrateBudgetMs: 1000 });
    await expand(ctx, catalog);

    const error = await rejectionOf(migrateToEnd(ctx, catalog, { maxCalls: 5 }));

    expect(error).toBeInstanceOf(MigrateRunawayError);
    expect(error.message).toMatch(
      /Step r1_migrate01 stopped: its batches changed 24 rows in this pass without reaching a batch that changes none, more than twice the 10 rows of the tables it reads and writes \("t"\) plus one batch: it keeps changing rows it already changed.* \(r1\/migrate01_step\.sql\)/,
    );
    // 2 × 10 + 3 = 23 rows allowed: the eighth batch (24 rows) is the last.
    expect((await db.pool.query(`SELECT sum(n)::int AS total FROM t`)).rows[0].total).toBe(24);
    expect(await readHistory(db.client, 'runaway-run')).toContainEqual(expect.objectContaining({ stepId: 'r1_migrate01', outcome: 'failed' }));
  });

  it('lets a converging INSERT into an empty table copy far more rows than the table it writes held', async () => {
    const { db, catalog } = await tableWith(
      60,
      '-- emc:repeat-until-zero\n' +
        'INSERT INTO copy (id) SELECT id FROM t WHERE NOT EXISTS (SELECT 1 FROM copy c WHERE c.id = t.id) ORDER BY id LIMIT :batch_size;\n',
    );
    const ctx = await startRun(db.client, 'copy-run', { batchSize: 4 });
    await expand(ctx, catalog);
    await migrateToEnd(ctx, catalog);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM copy`)).rows[0].n).toBe(60);
  });
});

describe('rows the application holds locked at the end of a pass', () => {
  const SKIP_LOCKED =
    '-- emc:repeat-until-zero\n' +
    '-- emc:pending SELECT count(*) FROM t WHERE NOT done\n' +
    'UPDATE t SET done = true, n = n + 1\n' +
    'WHERE id = ANY (ARRAY(SELECT id FROM t WHERE NOT done ORDER BY id LIMIT :batch_size FOR UPDATE SKIP LOCKED));\n';

  async function lockRows(db: TestDatabase, ids: number[]) {
    const connection = await db.pool.connect();
    await connection.query('BEGIN');
    await connection.query(`SELECT id FROM t WHERE id = ANY($1) FOR UPDATE`, [ids]);
    return async () => {
      await connection.query('COMMIT');
      connection.release();
    };
  }

  it('get more passes after a growing pause: once the lock is gone the step finishes, every row once', async () => {
    const { db, catalog } = await tableWith(12, SKIP_LOCKED);
    const ctx = await startRun(db.client, 'locked-run', { batchSize: 5, lockTimeoutMs: 400 });
    const events: EngineEvent[] = [];
    await expand(ctx, catalog);
    const release = await lockRows(db, [2, 7]);
    const released = new Promise((resolve) => setTimeout(resolve, 700)).then(release);

    const results: MigrateResult[] = await migrateToEnd({ ...ctx, onEvent: (e) => events.push(e) }, catalog);
    await released;

    expect(results.at(-1)!.finished).toBe(true);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM t WHERE done AND n = 1`)).rows[0].n).toBe(12);
    expect(events).toContainEqual({ type: 'migrate-pass-restarted', stepId: 'r1_migrate01', pending: 2, pass: 2 });
  });

  it('fail after the last pass with a message that says the rows may be locked, not that the statement is wrong', async () => {
    const { db, catalog } = await tableWith(12, SKIP_LOCKED);
    const ctx = await startRun(db.client, 'locked-run', { batchSize: 5, lockTimeoutMs: 200 });
    await expand(ctx, catalog);
    const release = await lockRows(db, [3]);
    try {
      const started = Date.now();
      const error = await rejectionOf(migrateToEnd(ctx, catalog));
      expect(error).toBeInstanceOf(PendingRowsRemainError);
      expect(error.message).toBe(
        'Step r1_migrate01 (r1/migrate01_step.sql): its pending query still counts 1 rows after 4 passes, each ending with no row left for the batch statement, with a pause between passes. The rows may be locked by the application or written again by the old release, or the batch statement may not change the rows the pending query counts.',
      );
      // Pauses of 1, 2 and 3 × lockTimeoutMs between the four passes.
      expect(Date.now() - started).toBeGreaterThanOrEqual(1200);
    } finally {
      await release();
    }
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM t WHERE done AND n = 1`)).rows[0].n).toBe(11);
    // The lock gone, a new run gets a new series of passes and finishes.
    await migrateToEnd(ctx, catalog);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM t WHERE done AND n = 1`)).rows[0].n).toBe(12);
  });

  it('a keyset step whose pending rows stay after its last pass starts from the first key on the next run', async () => {
    const { db, catalog } = await tableWith(
      12,
      '-- emc:keyset table=t key=id\n' +
        '-- emc:pending SELECT count(*) FROM t WHERE NOT done\n' +
        '-- Rows 4 to 6 are left out until the copy table has a row.\n' +
        'UPDATE t SET done = true, n = n + 1 WHERE id BETWEEN :from_key AND :to_key AND NOT done\n' +
        '  AND (id NOT BETWEEN 4 AND 6 OR EXISTS (SELECT 1 FROM copy));\n',
    );
    const ctx = await startRun(db.client, 'keyset-passes', { batchSize: 5, lockTimeoutMs: 100 });
    await expand(ctx, catalog);
    const error = await rejectionOf(migrateToEnd(ctx, catalog));
    expect(error).toBeInstanceOf(PendingRowsRemainError);
    expect(error.message).toContain('still counts 3 rows after 4 passes');
    await db.pool.query(`INSERT INTO copy VALUES (1)`);
    await migrateToEnd(ctx, catalog);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM t WHERE done AND n = 1`)).rows[0].n).toBe(12);
  });
});
