import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { seedDemoDatabase } from '../bin/local/demo-database.ts';
import {
  acquireLease,
  EngineTimeoutError,
  expand,
  LeaseBusyError,
  LeaseHeldError,
  LeaseLostError,
  loadCatalog,
  migrate,
  PgSqlClient,
  plan,
  resolveSettings,
  StepFailedError,
  type Catalog,
  type RunContext,
  type SettingsOverrides,
  type Step,
} from '../lambdas/core/index.ts';
import { engineBounds } from '../lambdas/core/state/engine-transaction.ts';
import { finishUpgrade } from '../lambdas/core/workflow/run-summary.ts';
import type { UpgradePlan } from '../lambdas/core/workflow/upgrade-plan.ts';
import { DEMO_MIGRATIONS, writeMigrations } from './support/catalog-fixtures.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { migrateToEnd, startRun } from './support/engine.ts';
import { engineState, publicSchema, rejectionOf, tableRows } from './support/engine-faults.ts';
import { HookedSqlClient, type StatementAboutToRun } from './support/hooked-client.ts';
import { recordFigures, type Figure } from './support/reliability-figures.ts';

/**
 * The limits of the engine's own statements and transactions: pending queries run READ ONLY under a statement
 * timeout, every engine statement outside a batch is bounded below the Data API's 45 s, a stalled lease holder
 * blocks nobody for long, and a run whose lease was taken over writes nothing on any path.
 */
let catalog: Catalog;
const databases: TestDatabase[] = [];
const clients: PgSqlClient[] = [];
const sessions: pg.Client[] = [];
const figures: Figure[] = [];

async function demoDatabase(rows = 200): Promise<TestDatabase> {
  const db = await createTestDatabase();
  databases.push(db);
  await seedDemoDatabase(db.client, rows);
  return db;
}

/** A raw session of the test's own, beside the engine (a stalled holder, an application transaction). */
async function session(db: TestDatabase): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: db.url });
  client.on('error', () => {});
  await client.connect();
  sessions.push(client);
  return client;
}

function newClient(db: TestDatabase): PgSqlClient {
  const client = new PgSqlClient(db.url);
  clients.push(client);
  return client;
}

beforeAll(async () => {
  catalog = await loadCatalog(DEMO_MIGRATIONS);
});
afterAll(async () => {
  await recordFigures('engine bounds', 'test/engine-bounds.test.ts', figures);
});
afterEach(async () => {
  for (const s of sessions.splice(0)) await s.end().catch(() => {});
  for (const c of clients.splice(0)) await c.close();
  for (const db of databases.splice(0)) await db.drop();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Settles `promise`, or says it was still pending after `ms` (a call that hangs fails the test instead of it). */
async function within<T>(ms: number, promise: Promise<T>): Promise<{ settled: boolean; value?: T; error?: Error }> {
  const timer = sleep(ms).then(() => ({ settled: false }));
  const outcome = promise.then(
    (value) => ({ settled: true, value }),
    (error: Error) => ({ settled: true, error }),
  );
  return Promise.race([outcome, timer]);
}

/** The catalog with one step's pending query replaced (checksums unchanged: no drift). */
function withPending(source: Catalog, stepId: string, pendingSql: string): Catalog {
  return {
    ...source,
    steps: source.steps.map((s): Step =>
      s.id === stepId && s.phase === 'migrate' ? { ...s, pendingSql } : s,
    ),
  };
}

async function snapshot(db: TestDatabase) {
  return { schema: await publicSchema(db.pool), images: await tableRows(db.pool, 'images'), engine: await engineState(db.pool) };
}

async function imageCount(db: TestDatabase): Promise<number> {
  return (await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM images`)).rows[0]!.n;
}

describe('pending queries', () => {
  it('run READ ONLY in plan: one that would delete rows deletes nothing and fails naming the step', async () => {
    const db = await demoDatabase(200);
    const ctx = await startRun(db.client, 'run-a');
    await expand(ctx, catalog);
    await migrateToEnd(ctx, catalog);
    const deleting = withPending(
      catalog,
      'bexar_migrate01',
      `WITH gone AS (DELETE FROM images WHERE id % 2 = 0 RETURNING 1) SELECT count(*) FROM gone`,
    );
    const before = await snapshot(db);

    const error = await rejectionOf(plan(db.client, deleting));

    expect(error).toBeInstanceOf(StepFailedError);
    expect((error as StepFailedError).stepId).toBe('bexar_migrate01');
    expect((error as StepFailedError).sqlState).toBe('25006');
    expect(error.message).toContain('pending queries must be read-only');
    expect(error.message).toContain('bexar/migrate01_backfill_visibility.sql');
    expect(await imageCount(db)).toBe(200);
    expect(await snapshot(db)).toEqual(before);
    figures.push({
      check: 'Pending query that deletes rows (a DELETE ... RETURNING CTE) asked by plan, the read-only preview',
      tried: 1,
      passed: 1,
      detail: 'StepFailedError naming bexar_migrate01 and its file (SQLSTATE 25006, "pending queries must be read-only"); 200 of 200 rows kept, database unchanged',
    });
  });

  it('run READ ONLY in migrate too: a function called by the pending query cannot delete rows either', async () => {
    const db = await createTestDatabase();
    databases.push(db);
    await db.pool.query(`CREATE TABLE items (id serial PRIMARY KEY, label text NOT NULL)`);
    await db.pool.query(`INSERT INTO items (label) SELECT 'item ' || g FROM generate_series(1, 50) g`);
    // What a load-time check cannot see: a plain SELECT whose function writes.
    await db.pool.query(`
      CREATE FUNCTION purge_and_count() RETURNS bigint LANGUAGE plpgsql AS $$
      BEGIN
        DELETE FROM items WHERE id > 25;
        RETURN (SELECT count(*) FROM items WHERE done IS NULL);
      END $$`);
    const directory = writeMigrations({
      'r1/expand01_add_done.sql': `ALTER TABLE items ADD COLUMN done boolean;\n`,
      'r1/migrate01_fill_done.sql':
        `-- emc:keyset table=items key=id\n-- emc:pending SELECT purge_and_count()\n` +
        `UPDATE items SET done = true WHERE id BETWEEN :from_key AND :to_key AND done IS NULL;\n`,
    });
    const custom = await loadCatalog(directory);
    const ctx = await startRun(db.client, 'run-a');
    await expand(ctx, custom);

    const error = await rejectionOf(migrate(ctx, custom));

    expect(error).toBeInstanceOf(StepFailedError);
    expect((error as StepFailedError).stepId).toBe('r1_migrate01');
    expect((error as StepFailedError).sqlState).toBe('25006');
    expect(error.message).toMatch(/its pending query tried to write .*pending queries must be read-only/);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM items`)).rows[0].n).toBe(50);
    figures.push({
      check: 'Pending query that is a plain SELECT of a function deleting rows, at the end of a migrate pass',
      tried: 1,
      passed: 1,
      detail: 'StepFailedError naming r1_migrate01 (SQLSTATE 25006); 50 of 50 rows kept',
    });
  });

  it('slower than engineStatementTimeoutMs fail as EngineTimeoutError naming the pending query, in plan and in migrate', async () => {
    const db = await demoDatabase(100);
    const ctx = await startRun(db.client, 'run-a', { engineStatementTimeoutMs: 500 });
    await expand(ctx, catalog);
    const slow = withPending(catalog, 'bexar_migrate01', `SELECT (SELECT count(*) FROM images WHERE visibility IS NULL) FROM pg_sleep(3)`);

    const started = Date.now();
    const inMigrate = await within(2500, migrate(ctx, slow));
    expect(inMigrate.error).toBeInstanceOf(EngineTimeoutError);
    expect(Date.now() - started).toBeLessThan(2500);
    const error = inMigrate.error as EngineTimeoutError;
    expect(error.timeoutMs).toBe(500);
    expect(error.message).toMatch(/^The pending query of bexar_migrate01 \(bexar\/migrate01_backfill_visibility\.sql\) took longer than 0\.5 s/);
    expect(error.message).toContain("45 s call limit");
    expect(error.transient).toBe(false);

    await migrateToEnd(ctx, catalog);
    const inPlan = await within(2500, plan(db.client, slow, undefined, { bounds: engineBounds(ctx.settings) }));
    expect(inPlan.error).toBeInstanceOf(EngineTimeoutError);
    expect(inPlan.error?.message).toContain('The pending query of bexar_migrate01');
    figures.push({
      check: 'Pending query of 3 s with engineStatementTimeoutMs 500, in migrate and in plan',
      tried: 2,
      passed: 2,
      detail: 'both cancelled by PostgreSQL as EngineTimeoutError naming the pending query of bexar_migrate01 and its file',
    });
  });
});

describe('engine statements outside batches', () => {
  const bounded: SettingsOverrides = { engineStatementTimeoutMs: 500, lockTimeoutMs: 10_000 };

  /** Holds `lock` on `table` in a raw session for `ms` at most (so that an unbounded statement ends the test, not the suite). */
  async function holdLock(db: TestDatabase, table: string, ms: number): Promise<() => Promise<void>> {
    const holder = await session(db);
    await holder.query('BEGIN');
    await holder.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
    const timer = setTimeout(() => void holder.query('ROLLBACK').catch(() => {}), ms);
    return async () => {
      clearTimeout(timer);
      await holder.query('ROLLBACK').catch(() => {});
    };
  }

  it.each([
    ['reading the state before expand', 'emc.applied_step', /^Reading the upgrade state before expand took longer than 0\.5 s/],
    ['taking the lease', 'emc.lease', /^Taking the upgrade lease took longer than 0\.5 s/],
    ['reading the history for the summary', 'emc.history', /^Reading the history of the run took longer than 0\.5 s/],
  ])('are cancelled after engineStatementTimeoutMs when %s, as EngineTimeoutError naming it', async (what, table, message) => {
    const db = await demoDatabase(50);
    const ctx = await startRun(db.client, 'run-a', bounded);
    const calls: Record<string, () => Promise<unknown>> = {
      'reading the state before expand': () => expand(ctx, catalog),
      'taking the lease': () => acquireLease(db.client, 'run-a', 600, { bounds: engineBounds(ctx.settings) }),
      'reading the history for the summary': () =>
        finishUpgrade(db.client, { runId: 'run-a', settings: ctx.settings, startedAt: new Date().toISOString() } as UpgradePlan),
    };
    const release = await holdLock(db, table, 4000);
    const started = Date.now();
    const outcome = await within(3000, calls[what]!());
    await release();

    expect(outcome.error).toBeInstanceOf(EngineTimeoutError);
    expect(outcome.error?.message).toMatch(message);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeLessThan(3000);
    figures.push({
      check: `Engine statement behind an ACCESS EXCLUSIVE lock on ${table} (engineStatementTimeoutMs 500), ${what}`,
      tried: 1,
      passed: 1,
      detail: `EngineTimeoutError after ${elapsed} ms naming what timed out, instead of waiting for the lock`,
    });
  });
});

describe('a stalled lease holder', () => {
  /** A session that locks the lease row and then stays idle inside its transaction, as a frozen holder would. */
  async function lockLeaseRow(db: TestDatabase): Promise<{ pid: number; end: () => Promise<void> }> {
    const stalled = await session(db);
    const pid = (await stalled.query<{ pid: number }>(`SELECT pg_backend_pid() AS pid`)).rows[0]!.pid;
    await stalled.query('BEGIN');
    await stalled.query(`SELECT * FROM emc.lease FOR UPDATE`);
    const timer = setTimeout(() => void stalled.query('ROLLBACK').catch(() => {}), 6000);
    return {
      pid,
      end: async () => {
        clearTimeout(timer);
        await stalled.query('ROLLBACK').catch(() => {});
      },
    };
  }

  it('does not make a new acquire hang after expiry, nor lets it steal the lease: LeaseBusyError naming the pid, then taken once it ends', async () => {
    const db = await demoDatabase(20);
    await startRun(db.client, 'run-a', { lockTimeoutMs: 300 });
    await db.pool.query(`UPDATE emc.lease SET expires_at = now() - interval '1 second'`);
    const leaseBefore = (await engineState(db.pool)).lease;
    const stalled = await lockLeaseRow(db);

    const started = Date.now();
    const outcome = await within(4000, acquireLease(db.client, 'run-b', 600, { bounds: engineBounds(resolveSettings({ lockTimeoutMs: 300 })) }));

    expect(outcome.error).toBeInstanceOf(LeaseBusyError);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeLessThan(3000);
    const error = outcome.error as LeaseBusyError;
    expect(error.transient).toBe(true);
    expect(error.blockingPid).toBe(stalled.pid);
    expect(error.message).toContain(`backend pid ${stalled.pid}`);
    expect(error.message).toContain('300 ms');
    await stalled.end();
    expect((await engineState(db.pool)).lease).toEqual(leaseBefore);

    expect((await acquireLease(db.client, 'run-b', 600)).owner).toBe('run-b');
    figures.push({
      check: 'Expired lease whose row a stalled session holds FOR UPDATE, idle in its transaction; a new run acquires (lock_timeout 300 ms)',
      tried: 1,
      passed: 1,
      detail: `LeaseBusyError (transient) after ${elapsed} ms naming the stalled backend's pid, lease row unchanged; taken at once after the session ended`,
    });
  });

  it('behind a live lease answers LeaseHeldError at once', async () => {
    const db = await demoDatabase(20);
    await startRun(db.client, 'run-a', { lockTimeoutMs: 300 });
    const stalled = await lockLeaseRow(db);

    const outcome = await within(4000, acquireLease(db.client, 'run-b', 600, { bounds: engineBounds(resolveSettings({ lockTimeoutMs: 300 })) }));
    await stalled.end();

    expect(outcome.error).toBeInstanceOf(LeaseHeldError);
    expect((outcome.error as LeaseHeldError).holder).toBe('run-a');
  });

  it.each([
    ['expand', (ctx: RunContext): Promise<unknown> => expand(ctx, catalog)],
    ['migrate', (ctx: RunContext): Promise<unknown> => migrate(ctx, catalog)],
  ])('makes the holder\'s own %s wait at most lock_timeout for the lease row: LeaseBusyError, nothing written', async (phase, call) => {
    const db = await demoDatabase(50);
    const ctx = await startRun(db.client, 'run-a', { lockTimeoutMs: 300 });
    if (phase === 'migrate') await expand(ctx, catalog);
    const before = await snapshot(db);
    const stalled = await lockLeaseRow(db);

    const outcome = await within(4000, call(ctx));
    await stalled.end();

    expect(outcome.error).toBeInstanceOf(LeaseBusyError);
    expect(await snapshot(db)).toEqual(before);
  });

  it('inside an engine transaction is ended by the server after idleInTransactionTimeoutMs, releasing its locks', async () => {
    const db = await demoDatabase(50);
    let frozen!: () => void;
    const freezing = new Promise<void>((resolve) => (frozen = resolve));
    let froze = false;
    // The run freezes inside expand01's transaction, after its ALTER TABLE took images' ACCESS EXCLUSIVE lock.
    const hooked = new HookedSqlClient(newClient(db), async (s) => {
      if (!froze && s.inTransaction && /^\s*INSERT INTO emc\.applied_step/.test(s.sql)) {
        froze = true;
        frozen();
        await sleep(3000);
      }
    });
    const ctx = await startRun(hooked, 'run-a', { idleInTransactionTimeoutMs: 300 });
    const run = rejectionOf(expand(ctx, catalog));
    await freezing;
    const frozenAt = Date.now();

    // An application query queued behind the frozen step's lock gets through once the server ends that transaction.
    const app = await session(db);
    await app.query(`SELECT count(*) FROM images`);
    const waited = Date.now() - frozenAt;
    const engineSessions = await db.pool.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'`,
    );

    expect(waited).toBeLessThan(2000);
    figures.push({
      check: 'Run frozen 3 s inside a DDL step\'s transaction (idleInTransactionTimeoutMs 300)',
      tried: 1,
      passed: 1,
      detail: `the server ended the transaction; an application query queued behind its lock answered ${waited} ms after the freeze began; the next call converged`,
    });
    expect(engineSessions.rows[0].n).toBe(0);
    const error = await run;
    expect(error).toBeInstanceOf(Error);
    expect((await engineState(db.pool)).applied).toEqual([]);
    // A new call converges.
    const again = { ...ctx, client: db.client };
    expect((await expand(again, catalog)).versionAfter).toBe('bexar_expand03');
  });
});

describe('a run whose lease was taken over', () => {
  const paths: string[] = [];
  afterAll(() => {
    figures.push({
      check: 'Lease taken over just before a write path of the old holder: reopening a step, restarting a pass, a "continued" history row, a CREATE INDEX CONCURRENTLY statement',
      tried: 4,
      passed: paths.length,
      detail: `LeaseLostError on ${paths.join(', ')}; nothing written after the takeover`,
    });
  });
  /** Expires run-a's lease and gives it to run-b, from beside the engine. */
  async function takeOver(db: TestDatabase): Promise<void> {
    await db.pool.query(`UPDATE emc.lease SET expires_at = now() - interval '1 second'`);
    await acquireLease(db.client, 'run-b', 600);
  }

  /**
   * Runs `call` on a client that takes the lease over just before the first statement `after` is true of (always a
   * first statement of its transaction, or one outside any: nothing of the run holds the lease row then), and
   * returns the call's error and what the database looked like at the takeover.
   */
  async function takenOverAt(
    db: TestDatabase,
    ctxOf: (client: HookedSqlClient) => Promise<RunContext>,
    after: (s: StatementAboutToRun) => boolean,
    call: (ctx: RunContext) => Promise<unknown>,
    prepare?: (s: StatementAboutToRun) => Promise<void>,
  ) {
    let taken: Awaited<ReturnType<typeof snapshot>> | undefined;
    const hooked = new HookedSqlClient(newClient(db), async (s) => {
      await prepare?.(s);
      if (taken === undefined && s.indexInTransaction === 0 && after(s)) {
        await takeOver(db);
        taken = await snapshot(db);
      }
    });
    const ctx = await ctxOf(hooked);
    const error = await rejectionOf(call(ctx));
    return { error, taken, after: await snapshot(db) };
  }

  const PENDING_01 = 'SELECT count(*) FROM images WHERE visibility IS NULL';
  const isPending01 = (sql: string | undefined) => sql?.trim() === PENDING_01;

  it('does not reopen a finished step', async () => {
    const db = await demoDatabase(100);
    const setup = await startRun(db.client, 'run-a');
    await expand(setup, catalog);
    await migrateToEnd(setup, catalog);
    const raw = await db.pool.connect();
    await raw.query(`SET session_replication_role = replica`);
    await raw.query(`INSERT INTO images (name, owner, is_public) VALUES ('late', 'tenant-1', true)`);
    await raw.query(`RESET session_replication_role`);
    raw.release();

    const { error, taken, after } = await takenOverAt(
      db,
      async (client) => ({ ...setup, client }),
      (s) => isPending01(s.previous),
      (ctx) => migrate(ctx, catalog),
    );

    expect(error).toBeInstanceOf(LeaseLostError);
    expect(taken).toBeDefined();
    expect(after).toEqual(taken);
    paths.push('reopen');
  });

  it('does not restart a pass', async () => {
    const db = await demoDatabase(100);
    const setup = await startRun(db.client, 'run-a');
    await expand(setup, catalog);
    let unmigrated = false;
    const { error, taken, after } = await takenOverAt(
      db,
      async (client) => ({ ...setup, client }),
      (s) => isPending01(s.previous),
      (ctx) => migrate(ctx, catalog),
      // At the end of the pass a row behind the cursor loses its value again (as an old-release write without the
      // trigger would leave it), so the pending query asks for another pass.
      async (s) => {
        if (!unmigrated && isPending01(s.sql)) {
          unmigrated = true;
          const raw = await db.pool.connect();
          await raw.query(`SET session_replication_role = replica`);
          await raw.query(`UPDATE images SET visibility = NULL WHERE id = (SELECT min(id) FROM images)`);
          await raw.query(`RESET session_replication_role`);
          raw.release();
        }
      },
    );

    expect(error).toBeInstanceOf(LeaseLostError);
    expect(taken?.engine.progress).toMatchObject([{ step_id: 'bexar_migrate01', pass: 1, finished: false }]);
    expect(after).toEqual(taken);
    paths.push('pass restart');
  });

  it('writes no "continued" history row', async () => {
    const db = await demoDatabase(200);
    const setup = await startRun(db.client, 'run-a', { batchSize: 50, migrateBudgetMs: 1 });
    await expand(setup, catalog);
    const { error, taken, after } = await takenOverAt(
      db,
      async (client) => ({ ...setup, client }),
      // Right after the first batch (one statement: emc.run_batch, which moved the cursor).
      (s) => s.previous?.includes('FROM emc.run_batch(') === true,
      (ctx) => migrate(ctx, catalog),
    );

    expect(error).toBeInstanceOf(LeaseLostError);
    expect(taken?.engine.progress).toMatchObject([{ step_id: 'bexar_migrate01', batches: '1' }]);
    expect(after).toEqual(taken);
    expect((after.engine.history as { outcome: string }[]).map((h) => h.outcome)).not.toContain('continued');
    paths.push('continued row');
  });

  it('runs no statement of a no-transaction step', async () => {
    const db = await demoDatabase(100);
    const setup = await startRun(db.client, 'run-a');
    // Expand up to the CREATE INDEX CONCURRENTLY step: the takeover comes right after its `running` history row.
    const { error, taken, after } = await takenOverAt(
      db,
      async (client) => ({ ...setup, client }),
      (s) => /^\s*INSERT INTO emc\.history .*'running'/s.test(s.previous ?? ''),
      (ctx) => expand(ctx, catalog),
    );

    expect(error).toBeInstanceOf(LeaseLostError);
    expect(taken?.engine.applied).toHaveLength(2);
    expect(after).toEqual(taken);
    const index = await db.pool.query(`SELECT to_regclass('images_owner_id_idx') AS found`);
    expect(index.rows[0].found).toBeNull();
    paths.push('no-transaction statement');
  });
});
