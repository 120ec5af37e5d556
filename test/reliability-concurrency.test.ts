import './support/quiet-handler-logs.ts';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { seedDemoDatabase } from '../bin/local/demo-database.ts';
import { runLocalExecution, type LocalExecutionResult } from '../bin/local/run-local-execution.ts';
import {
  acquireLease,
  currentLease,
  expand,
  LeaseHeldError,
  loadCatalog,
  migrate,
  PgSqlClient,
  readHistory,
  type Catalog,
  type EngineEvent,
  type RunContext,
  type SettingsOverrides,
} from '../lambdas/core/index.ts';
import { startUpgrade } from '../lambdas/core/workflow/upgrade-plan.ts';
import { DrainSource } from '../lib/drain-source.ts';
import { DEMO_MIGRATIONS } from './support/catalog-fixtures.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { dumpDatabase } from './support/database-dump.ts';
import { migrateToEnd, startRun } from './support/engine.ts';
import { rejectionOf } from './support/engine-faults.ts';
import { FaultInjectingSqlClient } from './support/fault-client.ts';
import { recordFigures, type Figure } from './support/reliability-figures.ts';

/**
 * Concurrency around the one-upgrade-at-a-time lease: two executions started together, a holder that dies without
 * its failure path (its lease must expire before anyone else may go on), and a lease renewed by every batch of a
 * migrate that takes several calls.
 */
const FINAL_VERSION = 'bexar_expand03, bexar_contract03';
const LOCAL_SETTINGS: SettingsOverrides = { migrateBudgetMs: 1000, batchSize: 250, batchPauseMs: 100 };
const figures: Figure[] = [];
let catalog: Catalog;

const databases: TestDatabase[] = [];
const clients: PgSqlClient[] = [];
async function demoDatabase(rows: number): Promise<TestDatabase> {
  const db = await createTestDatabase();
  databases.push(db);
  await seedDemoDatabase(db.client, rows);
  return db;
}
beforeAll(async () => {
  catalog = await loadCatalog(DEMO_MIGRATIONS);
});
afterEach(async () => {
  for (const client of clients.splice(0)) await client.close();
  for (const db of databases.splice(0)) await db.drop();
});
afterAll(async () => {
  await recordFigures('concurrency', 'test/reliability-concurrency.test.ts', figures);
});

function execute(db: TestDatabase, executionName: string): Promise<LocalExecutionResult> {
  return runLocalExecution({
    databaseUrl: db.url,
    migrationsDirectory: DEMO_MIGRATIONS,
    drainSource: DrainSource.databaseSessions('demo-app-old%'),
    input: {},
    executionName,
    settings: LOCAL_SETTINGS,
    waitMs: 50,
    retryMs: 50,
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('two executions at once', () => {
  it('one upgrades, the other is refused in "Start upgrade" with a message naming the holder, and changes nothing', async () => {
    const db = await demoDatabase(1000);

    const results = await Promise.all([execute(db, 'first-of-two'), execute(db, 'second-of-two')]);

    const winners = results.filter((r) => r.status === 'SUCCEEDED');
    const losers = results.filter((r) => r.status === 'FAILED');
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(1);
    const [winner, loser] = [winners[0]!, losers[0]!];
    expect(loser.error).toBe('LeaseHeldError');
    expect(loser.cause).toMatch(/^"Start upgrade" failed with LeaseHeldError: The upgrade lease is held by /);
    expect(loser.cause).toContain(`held by ${winner.executionArn} until `);
    expect(loser.cause).toContain('only one upgrade may run at a time');
    const loserStates = loser.events.flatMap((e) => (e.type === 'StateEntered' ? [e.state.name] : []));
    expect(loserStates).toEqual(['Start upgrade', 'Record failure', 'Upgrade failed']);

    expect(winner.output).toMatchObject({ versionBefore: '(none)', versionAfter: FINAL_VERSION, outcome: 'completed' });
    // The loser's failure path released nothing of the winner's, and wrote nothing.
    expect(await readHistory(db.client, loser.executionArn)).toEqual([]);
    const history = await readHistory(db.client);
    expect(new Set(history.map((h) => h.runId))).toEqual(new Set([winner.executionArn]));
    expect(history.filter((h) => h.outcome === 'succeeded').map((h) => h.stepId)).toEqual(catalog.steps.map((s) => s.id));
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM emc.lease`)).rows[0].n).toBe(0);
    figures.push({
      check: 'Two local executions of the state machine started together on one database',
      tried: 2,
      passed: 2,
      detail: `one completed (${FINAL_VERSION}); the other failed in "Start upgrade" with LeaseHeldError naming the first's execution ARN, and wrote no history`,
    });
  });
});

describe('a holder that dies without its failure path', () => {
  const TTL_SECONDS = 3;
  it('blocks others until its lease expires; then a new execution takes over and finishes without redoing its batches', async () => {
    const rows = 600;
    const db = await demoDatabase(rows);
    // The dead run: ttl 3 s (below the 60 s the input schema allows; the engine is called directly), its connection
    // dropped instead of migrate01's third batch (one statement: emc.run_batch), and nothing left to release its lease.
    let batches = 0;
    const dying = new FaultInjectingSqlClient(new PgSqlClient(db.url), {
      mode: 'before',
      where: (s) => s.sql.includes('FROM emc.run_batch(') && ++batches === 3,
    });
    const ctx = await startRun(dying, 'dead-holder', { batchSize: 100, leaseTtlSeconds: TTL_SECONDS });
    await expand(ctx, catalog);
    await expect(migrate(ctx, catalog)).rejects.toThrow(/terminating connection/);
    await dying.close();
    expect(dying.killedAt?.sql).toContain('FROM emc.run_batch(');
    const progress = async () =>
      (await db.pool.query(`SELECT step_id, rows_done::int, finished FROM emc.migrate_progress ORDER BY step_id`)).rows;
    expect(await progress()).toEqual([{ step_id: 'bexar_migrate01', rows_done: 200, finished: false }]);
    expect((await currentLease(db.client))?.owner).toBe('dead-holder');

    // "Start upgrade" of an execution started right away (the engine call: synthesizing a state machine could outlast
    // the short ttl; the refusal through the state machine is shown above).
    const before = await dumpDatabase(db.pool, ['images']);
    const refused = await rejectionOf(startUpgrade(db.client, catalog, { runId: 'too-early', input: {} }));
    expect(refused).toBeInstanceOf(LeaseHeldError);
    expect(refused.message).toMatch(/^The upgrade lease is held by dead-holder until /);
    expect(await dumpDatabase(db.pool, ['images'])).toEqual(before);

    const waitStarted = Date.now();
    while ((await currentLease(db.client)) !== undefined) await sleep(100);
    const waitedMs = Date.now() - waitStarted;
    expect(waitedMs).toBeLessThan(TTL_SECONDS * 1000 + 500);

    const later = await execute(db, 'after-expiry');
    expect(later.status, later.cause).toBe('SUCCEEDED');
    expect(later.output).toMatchObject({ versionBefore: 'bexar_expand03', versionAfter: FINAL_VERSION });
    // The two committed batches were not redone: the later run migrated only what was left.
    expect((later.output as { rowsMigrated: number }).rowsMigrated).toBe(rows - 200 + rows + rows / 10);
    expect(await progress()).toEqual([
      { step_id: 'bexar_migrate01', rows_done: rows, finished: true },
      { step_id: 'bexar_migrate02', rows_done: rows, finished: true },
      { step_id: 'bexar_migrate03', rows_done: rows / 10, finished: true },
    ]);
    const wrong = await db.pool.query(
      `SELECT count(*)::int AS n FROM images WHERE visibility IS DISTINCT FROM CASE WHEN id % 3 = 0 THEN 'public' ELSE 'private' END
         OR owner_id IS DISTINCT FROM 'tenant-' || (id % 500) OR name <> 'image-' || id`,
    );
    expect(wrong.rows[0].n).toBe(0);
    figures.push({
      check: `Holder killed mid-migrate with no failure path (lease ttl ${TTL_SECONDS} s)`,
      tried: 2,
      passed: 2,
      detail: `"Start upgrade" right after the kill was refused (LeaseHeldError naming the dead holder, database unchanged); the lease expired ${waitedMs} ms later and the next execution finished from the dead run's cursor (200 rows not redone)`,
    });
  });
});

describe('a lease renewed during a long migrate', () => {
  it('is renewed by every batch and stays with its holder through several migrate calls, while another run keeps trying to take it', async () => {
    const rows = 600;
    const db = await demoDatabase(rows);
    // Long enough that no gap between two renewals on a loaded machine reaches it: the test reads the renewals from
    // the database instead of racing the clock.
    const ttlSeconds = 600;
    const base = await startRun(db.client, 'long-migrate', { leaseTtlSeconds: ttlSeconds });
    await expand(base, catalog);

    // Every write to the lease row and every batch's progress update, in the order they happened, with the
    // transaction they happened in: a batch (one transaction, run_batch) that did not renew the lease shows.
    await db.pool.query(`
      CREATE SCHEMA watch;
      CREATE TABLE watch.log (seq bigserial PRIMARY KEY, what text NOT NULL, tx bigint NOT NULL, owner text, expires_at timestamptz);
      CREATE FUNCTION watch.lease() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO watch.log (what, tx, owner, expires_at) VALUES ('lease', txid_current(), NEW.owner, NEW.expires_at); RETURN NULL; END $$;
      CREATE FUNCTION watch.batch() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO watch.log (what, tx) VALUES ('batch', txid_current()); RETURN NULL; END $$;
      CREATE TRIGGER watch AFTER INSERT OR UPDATE ON emc.lease FOR EACH ROW EXECUTE FUNCTION watch.lease();
      CREATE TRIGGER watch AFTER UPDATE ON emc.migrate_progress FOR EACH ROW WHEN (NEW.batches > OLD.batches) EXECUTE FUNCTION watch.batch();
    `);

    // The other run tries to take the lease after every batch the holder commits and between every two migrate calls:
    // its attempts are counted by the engine's events, not by the clock, so a loaded machine changes when they happen,
    // not how many there are. Attempts run one after the other, while the holder goes on.
    const intruder = new PgSqlClient(db.url);
    clients.push(intruder);
    let attempts = 0;
    let refused = 0;
    const attempt = async () => {
      attempts++;
      try {
        await acquireLease(intruder, 'intruder', 600);
      } catch (error) {
        if (error instanceof LeaseHeldError) refused++;
      }
    };
    let attempting: Promise<void> = Promise.resolve();
    const events: EngineEvent[] = [];
    // At most five paused batches of 50 rows a call (the pauses alone fill the budget): the 1800 rows take several
    // calls however fast the machine is, and a slow one only makes more.
    const ctx: RunContext = {
      ...base,
      settings: { ...base.settings, batchSize: 50, batchPauseMs: 200, migrateBudgetMs: 1000 },
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'batch') attempting = attempting.then(attempt);
      },
    };

    const calls = await migrateToEnd(ctx, catalog, {
      maxCalls: 100,
      afterCall: async () => {
        await attempting;
        await attempt();
      },
    });

    const batches = events.filter((e) => e.type === 'batch').length;
    expect(calls.at(-1)!.finished).toBe(true);
    expect(calls.length).toBeGreaterThanOrEqual(2);
    expect(batches).toBeGreaterThanOrEqual(rows / 50);
    expect(attempts).toBe(batches + calls.length);
    expect(refused).toBe(attempts);

    const log = (await db.pool.query<{ what: string; tx: string; owner: string | null; expires_at: Date | null }>(
      `SELECT what, tx, owner, expires_at FROM watch.log ORDER BY seq`,
    )).rows;
    const renewals = log.filter((e) => e.what === 'lease');
    const batchLog = log.filter((e) => e.what === 'batch');
    expect(batchLog).toHaveLength(batches);
    // Each batch renewed the lease in its own transaction, before its progress moved.
    for (const [i, entry] of log.entries()) {
      if (entry.what === 'batch') expect(log[i - 1], `batch ${i} without a renewal before it`).toMatchObject({ what: 'lease', tx: entry.tx });
    }
    // Only the holder ever wrote the lease row, and each write pushed its end further.
    expect(new Set(renewals.map((r) => r.owner))).toEqual(new Set(['long-migrate']));
    for (const [i, renewal] of renewals.entries()) {
      if (i > 0) expect(renewal.expires_at!.getTime()).toBeGreaterThan(renewals[i - 1]!.expires_at!.getTime());
    }
    expect((await currentLease(db.client))?.owner).toBe('long-migrate');
    // Steps ran strictly in catalog order, although calls ended between two batches of a step.
    const order = events.flatMap((e) => (e.type === 'step-started' || e.type === 'step-succeeded' ? [`${e.type}:${e.stepId}`] : []));
    for (const [i, entry] of order.entries()) {
      const [type, stepId] = entry.split(':') as [string, string];
      if (type !== 'step-started') continue;
      const earlier = catalog.steps.filter((s) => s.phase === 'migrate' && s.id < stepId).map((s) => `step-succeeded:${s.id}`);
      expect(earlier.filter((e) => !order.slice(0, i).includes(e)), `${stepId} started before an earlier step finished`).toEqual([]);
    }
    const applied = await db.pool.query(`SELECT step_id FROM emc.applied_step WHERE phase = 'migrate' ORDER BY applied_at`);
    expect(applied.rows.map((r) => r.step_id)).toEqual(['bexar_migrate01', 'bexar_migrate02', 'bexar_migrate03']);
    figures.push({
      check: `Lease renewed by every batch through ${calls.length} migrate calls, another run trying to take it after every batch and between calls`,
      tried: attempts,
      passed: refused,
      detail: `${batches} batches, each renewing the lease in its own transaction (${renewals.length} renewals, every one later than the one before, all by the holder); every attempt refused with LeaseHeldError; migrate steps applied in catalog order`,
    });
  });
});
