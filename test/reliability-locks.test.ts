import './support/quiet-handler-logs.ts';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { seedDemoDatabase } from '../bin/local/demo-database.ts';
import { runLocalExecution, type EventLog, type LocalExecutionResult } from '../bin/local/run-local-execution.ts';
import { synthesizeStateMachine } from '../bin/local/synthesized-state-machine.ts';
import {
  contract,
  expand,
  formatVersion,
  loadCatalog,
  LockTimeoutError,
  readHistory,
  readState,
  type Catalog,
  type RunContext,
} from '../lambdas/core/index.ts';
import { STATE_NAMES } from '../lambdas/core/workflow/state-names.ts';
import { DrainSource } from '../lib/drain-source.ts';
import { DEMO_MIGRATIONS } from './support/catalog-fixtures.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { dumpDatabase } from './support/database-dump.ts';
import { migrateToEnd, startRun } from './support/engine.ts';
import { rejectionOf } from './support/engine-faults.ts';
import { recordFigures, type Figure } from './support/reliability-figures.ts';

/**
 * Every DDL step runs under `lock_timeout`: behind a long application transaction it gives up quickly instead of
 * queueing its ACCESS EXCLUSIVE request in front of every application query for as long as that transaction lasts.
 * The state machine then retries the step with backoff, and never skips it.
 */
const LOCK_TIMEOUT_MS = 500;
const DRAIN = DrainSource.databaseSessions('demo-app-old%');
const figures: Figure[] = [];
let catalog: Catalog;
const databases: TestDatabase[] = [];
const connections: pg.Client[] = [];

beforeAll(async () => {
  catalog = await loadCatalog(DEMO_MIGRATIONS);
});
afterEach(async () => {
  for (const connection of connections.splice(0)) await connection.end().catch(() => {});
  for (const db of databases.splice(0)) await db.drop();
});
afterAll(async () => {
  await recordFigures('locks', 'test/reliability-locks.test.ts', figures);
});

async function demoDatabase(rows: number): Promise<TestDatabase> {
  const db = await createTestDatabase();
  databases.push(db);
  await seedDemoDatabase(db.client, rows);
  return db;
}

/** A connection of the new application release (not matched by the drain gate's pattern). */
async function application(db: TestDatabase): Promise<pg.Client> {
  const connection = new pg.Client({ connectionString: db.url, application_name: 'demo-app-new' });
  await connection.connect();
  connection.on('error', () => {});
  connections.push(connection);
  return connection;
}

const version = async (db: TestDatabase) => formatVersion((await readState(db.client)).version);

/** Waits until a backend of the engine waits for a heavyweight lock. */
async function engineWaitingOnLock(db: TestDatabase): Promise<void> {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const waiting = await db.pool.query(
      `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'emc-upgrade' AND wait_event_type = 'Lock'`,
    );
    if (waiting.rowCount) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error('the engine never waited for a lock');
}

/**
 * Holds ACCESS SHARE on images in an open transaction (a long report, say), runs `step`, and while the step's DDL
 * waits, times a plain application query issued from another connection.
 */
async function blockedStep(db: TestDatabase, step: () => Promise<unknown>) {
  const holder = await application(db);
  const reader = await application(db);
  await holder.query('BEGIN');
  await holder.query('SELECT count(*) FROM images');
  const started = Date.now();
  const failing = rejectionOf(step());
  await engineWaitingOnLock(db);
  const queryStarted = Date.now();
  const answer = await reader.query<{ name: string }>('SELECT name FROM images WHERE id = 1');
  const appQueryMs = Date.now() - queryStarted;
  const error = await failing;
  const stepMs = Date.now() - started;
  // The application's own transaction was not disturbed.
  await holder.query('SELECT count(*) FROM images');
  await holder.query('COMMIT');
  expect(answer.rows).toHaveLength(1);
  return { error, stepMs, appQueryMs };
}

describe('DDL behind an application transaction that holds a lock', () => {
  it('gives up after lock_timeout in expand and in contract (LockTimeoutError), holding application queries up no longer', async () => {
    const db = await demoDatabase(300);
    const ctx: RunContext = await startRun(db.client, 'lock-run', { lockTimeoutMs: LOCK_TIMEOUT_MS, batchSize: 100 });
    const measured: { phase: string; stepMs: number; appQueryMs: number }[] = [];

    for (const phase of ['expand', 'contract'] as const) {
      const before = await dumpDatabase(db.pool, ['images']);
      const run = phase === 'expand' ? () => expand(ctx, catalog) : () => contract(ctx, catalog, undefined, { drainConfirmed: true });
      const { error, stepMs, appQueryMs } = await blockedStep(db, run);

      expect(error).toBeInstanceOf(LockTimeoutError);
      expect((error as LockTimeoutError).stepId).toBe(`bexar_${phase}01`);
      expect((error as LockTimeoutError).transient).toBe(true);
      expect(error.message).toMatch(/canceling statement due to lock timeout/);
      expect(error.message).toContain(`bexar/${phase}01_`);
      // Fails fast instead of hanging for as long as the application's transaction lasts...
      expect(stepMs).toBeGreaterThanOrEqual(LOCK_TIMEOUT_MS - 50);
      expect(stepMs).toBeLessThan(LOCK_TIMEOUT_MS + 1500);
      // ...and the application query queued behind the step's lock request waited at most about lock_timeout.
      expect(appQueryMs).toBeLessThan(LOCK_TIMEOUT_MS + 700);
      measured.push({ phase, stepMs, appQueryMs });
      // Nothing of the step happened; only its failure was recorded.
      const after = await dumpDatabase(db.pool, ['images']);
      expect(after.schema).toEqual(before.schema);
      expect(after.rows).toEqual(before.rows);
      const history = await readHistory(db.client, 'lock-run');
      expect(history.at(-1)).toMatchObject({ stepId: `bexar_${phase}01`, outcome: 'failed' });

      // Once the application's transaction is over, the same call applies the step.
      await run();
      if (phase === 'expand') {
        expect(await version(db)).toBe('bexar_expand03');
        await migrateToEnd(ctx, catalog);
      }
    }
    expect(await version(db)).toBe('bexar_expand03, bexar_contract03');
    figures.push({
      check: `DDL step behind an application transaction holding ACCESS SHARE (lock_timeout ${LOCK_TIMEOUT_MS} ms), expand and contract`,
      tried: measured.length,
      passed: measured.length,
      detail: measured
        .map((m) => `${m.phase}: LockTimeoutError after ${m.stepMs} ms, an application query issued while the DDL waited answered in ${m.appQueryMs} ms`)
        .join('; '),
    });
  });
});

describe('a locked contract step in a local execution of the state machine', () => {
  const input = { settings: { lockTimeoutMs: 100 } };
  let db: TestDatabase;

  async function migratedDatabase(): Promise<TestDatabase> {
    db = await demoDatabase(300);
    const first = await execute({ ...input, stopAfter: 'migrate' });
    expect(first.status, first.cause).toBe('SUCCEEDED');
    return db;
  }

  function execute(executionInput: unknown, onEvent?: (event: EventLog) => void): Promise<LocalExecutionResult> {
    return runLocalExecution({
      databaseUrl: db.url,
      migrationsDirectory: DEMO_MIGRATIONS,
      drainSource: DRAIN,
      input: executionInput,
      settings: { migrateBudgetMs: 1000 },
      waitMs: 20,
      retryMs: 200,
      onEvent,
    });
  }

  const retriesOf = (result: LocalExecutionResult) =>
    result.events.flatMap((e) => (e.type === 'StateRetried' && e.state.name === STATE_NAMES.contract ? [e] : []));

  it('is deployed with a backoff: LockTimeoutError retried 5 times, 10 s doubling, full jitter', () => {
    const { definition } = synthesizeStateMachine({ migrationsDirectory: DEMO_MIGRATIONS, drainSource: DRAIN });
    const state = definition.States[STATE_NAMES.contract] as { Retry?: { ErrorEquals: string[] }[] };
    expect(state.Retry?.find((r) => r.ErrorEquals.includes('LockTimeoutError'))).toEqual({
      ErrorEquals: ['LockTimeoutError'],
      IntervalSeconds: 10,
      MaxAttempts: 5,
      BackoffRate: 2,
      JitterStrategy: 'FULL',
    });
  });

  it('is retried (StateRetried) while the application holds the lock, then applied once it is released', async () => {
    await migratedDatabase();
    const holder = await application(db);
    await holder.query('BEGIN');
    await holder.query('SELECT count(*) FROM images');
    let released: Promise<unknown> | undefined;

    const result = await execute(input, (event) => {
      if (!released && event.type === 'StateRetried' && event.retry.attempt >= 2) released = holder.query('COMMIT');
    });
    await released;

    expect(result.status, result.cause).toBe('SUCCEEDED');
    // Released at the 2nd retry; a 3rd may have started before the COMMIT landed.
    const retries = retriesOf(result);
    expect(retries.length).toBeGreaterThanOrEqual(2);
    expect(retries.length).toBeLessThanOrEqual(5);
    expect(retries.map((r) => [r.retry.attempt, r.retry.retrier.ErrorEquals])).toEqual(
      retries.map((_, i) => [i + 1, ['LockTimeoutError']]),
    );
    const failures = result.events.flatMap((e) => (e.type === 'StateFailed' ? [[e.state.name, e.Error]] : []));
    expect(failures).toEqual(retries.map(() => [STATE_NAMES.contract, 'LockTimeoutError']));
    // Never skipped: the blocked step and the ones after it were applied, in order, after the lock was released.
    expect(result.output).toMatchObject({ versionBefore: 'bexar_expand03', versionAfter: 'bexar_expand03, bexar_contract03' });
    const history = await readHistory(db.client, result.executionArn);
    expect(history.map((h) => [h.stepId, h.outcome])).toEqual([
      ...retries.map(() => ['bexar_contract01', 'failed']),
      ['bexar_contract01', 'succeeded'],
      ['bexar_contract02', 'succeeded'],
      ['bexar_contract03', 'succeeded'],
    ]);
    figures.push({
      check: 'Contract step locked out in a local execution, lock released at the 2nd retry',
      tried: 1,
      passed: 1,
      detail: `${retries.length + 1} attempts of "Contract schema": ${retries.length} failed with LockTimeoutError and were reported as StateRetried, the last applied contract01-03 in order`,
    });
  });

  it('fails the execution after the last retry if the lock is never released, contract not applied and the lease released', async () => {
    await migratedDatabase();
    const holder = await application(db);
    await holder.query('BEGIN');
    await holder.query('SELECT count(*) FROM images');
    const before = await dumpDatabase(db.pool, ['images']);

    const result = await execute(input);
    await holder.query('COMMIT');

    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('LockTimeoutError');
    expect(result.cause).toMatch(/^"Contract schema" failed with LockTimeoutError: Step bexar_contract01 could not take its locks in time/);
    expect(result.cause).toMatch(/Database version now: bexar_expand03$/);
    expect(retriesOf(result).map((r) => r.retry.attempt)).toEqual([1, 2, 3, 4, 5]);
    const after = await dumpDatabase(db.pool, ['images']);
    expect(after.schema).toEqual(before.schema);
    expect(after.rows).toEqual(before.rows);
    expect((after.engine.lease as unknown[]).length).toBe(0);
    const history = await readHistory(db.client, result.executionArn);
    expect(history.map((h) => [h.stepId, h.outcome])).toEqual(Array.from({ length: 6 }, () => ['bexar_contract01', 'failed']));
    figures.push({
      check: 'Contract step locked out for good in a local execution',
      tried: 1,
      passed: 1,
      detail: '6 attempts (1 + 5 retries) all ended in LockTimeoutError; the execution failed with it, nothing of contract was applied (schema and rows unchanged, version bexar_expand03) and the lease was released',
    });
  });
});
