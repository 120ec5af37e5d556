import { beforeAll, describe, expect, it } from 'vitest';
import { PgSqlClient } from '../lambdas/core/index.ts';
import { SqlError } from '../lambdas/core/sql/sql-client.ts';
import { createTestDatabase } from './support/database.ts';
import { rejectionOf } from './support/engine-faults.ts';
import { runWorkflow } from './support/engine.ts';
import { FaultInjectingSqlClient } from './support/fault-client.ts';
import {
  convergenceProblems,
  describeKillOutcomes,
  killAtEveryBoundary,
  Lane,
  prepareReference,
  SETTINGS,
  type Reference,
} from './support/kill-points.ts';
import { recordFigures } from './support/reliability-figures.ts';

/**
 * Crash at every statement boundary, part 1 of 2 (part 2: reliability-kill-before-commit): at kill point k the
 * connection that would run statement k dies instead, so statement k never runs and its open transaction is lost.
 * Recovery as the deployed state machine does it: "Record failure" releases the dead run's lease and a new execution
 * (a new run id) runs the whole upgrade again. Details in test/support/kill-points.ts.
 */
let reference: Reference;
beforeAll(async () => {
  reference = await prepareReference();
});

describe('the fault injection and the convergence check themselves', () => {
  it('drop the connection for real: its backend exits, its open transaction is rolled back, the caller gets the server\'s error', async () => {
    const db = await createTestDatabase();
    try {
      await db.pool.query(`CREATE TABLE t (x int)`);
      const backends = async () =>
        (await db.pool.query(`SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)).rows.map((r) => r.pid as number);

      // Before statement 3: statement 2 ran in the transaction, 3 never runs, and the transaction is lost.
      const before = new FaultInjectingSqlClient(new PgSqlClient(db.url), { at: 3, mode: 'before' });
      let pid = 0;
      const inTransaction = await rejectionOf(
        before.transaction(async (tx) => {
          pid = (await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
          await tx.query('INSERT INTO t VALUES (1)');
          await tx.query('INSERT INTO t VALUES (2)');
        }),
      );
      expect(inTransaction).toBeInstanceOf(SqlError);
      expect((inTransaction as SqlError).sqlState).toBe('57P01');
      expect(before.killedAt).toMatchObject({ n: 3, sql: 'INSERT INTO t VALUES (2)', inTransaction: true });
      expect(await backends()).not.toContain(pid);
      await before.close();

      // After the last statement of a transaction: it ran, but the COMMIT never happened.
      const beforeCommit = new FaultInjectingSqlClient(new PgSqlClient(db.url), { at: 1, mode: 'after' });
      await expect(beforeCommit.transaction((tx) => tx.query('INSERT INTO t VALUES (3)'))).rejects.toThrow(/terminating connection/);
      await beforeCommit.close();
      expect((await db.pool.query(`SELECT x FROM t`)).rows).toEqual([]);

      // After an autocommit statement: it committed, but the caller only sees the dropped connection.
      const replyLost = new FaultInjectingSqlClient(new PgSqlClient(db.url), { at: 1, mode: 'after' });
      await expect(replyLost.query('INSERT INTO t VALUES (4)')).rejects.toThrow(/terminating connection/);
      await replyLost.close();
      expect((await db.pool.query(`SELECT x FROM t`)).rows).toEqual([{ x: 4 }]);
    } finally {
      await db.drop();
    }
  });

  it('report a run that did not converge: killed and not recovered, or a row processed twice', async () => {
    const lane = await Lane.open();
    try {
      await lane.reset();
      const killed = new FaultInjectingSqlClient(new PgSqlClient(lane.db.url), {
        mode: 'before',
        // A migrate batch: one statement, emc.run_batch, holding the step's UPDATE.
        where: (s) => s.sql.includes('FROM emc.run_batch(') && s.label === 'migrate',
      });
      await expect(runWorkflow(killed, reference.catalog, { runId: 'killed', defaults: SETTINGS, onPhase: (p) => (killed.label = p) })).rejects.toThrow();
      await killed.close();
      const unfinished = await convergenceProblems(lane.db, reference.schema, reference.catalog);
      expect(unfinished.join('\n')).toMatch(/version is bexar_expand03/);
      expect(unfinished.join('\n')).toMatch(/schema differs in columns/);
      expect(unfinished.join('\n')).toMatch(/lease still held by killed/);

      await lane.reset();
      const client = new PgSqlClient(lane.db.url);
      await runWorkflow(client, reference.catalog, { runId: 'whole', defaults: SETTINGS });
      await client.close();
      expect(await convergenceProblems(lane.db, reference.schema, reference.catalog)).toEqual([]);
      // A row whose visibility is written a second time, as a batch applied twice would.
      await lane.db.pool.query(`UPDATE images SET visibility = 'public' WHERE id = 7`);
      await lane.db.pool.query(`UPDATE images SET visibility = 'private' WHERE id = 7`);
      expect(await convergenceProblems(lane.db, reference.schema, reference.catalog)).toEqual([
        'row changes [{"col":"name","rows":30,"total":30},{"col":"owner_id","rows":300,"total":300},{"col":"visibility","rows":300,"total":302}]',
      ]);
    } finally {
      await lane.close();
    }
  });
});

describe('a full upgrade of the demo release killed before any one of its statements', () => {
  it('converges after every kill point to the uninterrupted result: version, schema, every row, each row changed once', { timeout: 300_000 }, async () => {
    const total = reference.statements.length;
    // Counted on an uninterrupted run; the figure moves only when the engine's statements change (125 since a migrate
    // step's start, its end and migrate's reads are one statement each).
    expect(total).toBeGreaterThan(120);

    const outcomes = await killAtEveryBoundary(reference, 'before');

    const { figure, failures } = describeKillOutcomes(
      reference,
      outcomes,
      'Connection killed instead of running statement k, for every k of a full upgrade; recovery: failure path releases the lease, then a new execution',
    );
    await recordFigures('faults 1: kill before a statement', 'test/reliability-kill-before-statement.test.ts', [figure]);
    expect(failures).toEqual([]);
    expect(outcomes.map((o) => o.at)).toEqual(reference.statements.map((s) => s.n));
  });
});
