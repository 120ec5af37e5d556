import './support/quiet-handler-logs.ts';
import pg from 'pg';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startDataApiEmulator, type DataApiEmulator } from '../bin/local/data-api-emulator/index.ts';
import { seedDemoDatabase } from '../bin/local/demo-database.ts';
import { runLocalExecution, type EventLog, type LocalExecutionResult } from '../bin/local/run-local-execution.ts';
import {
  acquireLease,
  currentLease,
  ensureStateSchema,
  formatVersion,
  readHistory,
  readState,
  type SettingsOverrides,
} from '../lambdas/core/index.ts';
import { STATE_NAMES } from '../lambdas/core/workflow/state-names.ts';
import { DrainSource } from '../lib/drain-source.ts';
import { DEMO_MIGRATIONS, writeMigrations } from './support/catalog-fixtures.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

// Full executions of the synthesized state machine (what `cdk deploy` would deploy), each Task bound to the real
// handler, on a real PostgreSQL. One migrate call runs batches for 1 s; fixed 500-row batches (targetBatchMs 0) and
// the 150 ms pause between them make the demo's 3000 rows take several calls however fast the machine, so the
// migrate loop really loops.
const ROWS = 3000;
const SETTINGS: SettingsOverrides = { migrateBudgetMs: 1000, batchSize: 500, targetBatchMs: 0, batchPauseMs: 150 };
const DRAIN = DrainSource.databaseSessions('demo-app-old%');
const EXPAND_HEAD = 'bexar_expand03';
const FINAL_VERSION = 'bexar_expand03, bexar_contract03';

const databases: TestDatabase[] = [];
const connections: pg.Client[] = [];
afterEach(async () => {
  for (const connection of connections.splice(0)) await connection.end().catch(() => {});
  for (const db of databases.splice(0)) await db.drop();
});

async function demoDatabase(rows = ROWS): Promise<TestDatabase> {
  const db = await createTestDatabase();
  databases.push(db);
  await seedDemoDatabase(db.client, rows);
  return db;
}

async function connect(db: TestDatabase, applicationName: string): Promise<pg.Client> {
  const connection = new pg.Client({ connectionString: db.url, application_name: applicationName });
  await connection.connect();
  connections.push(connection);
  return connection;
}

function execute(
  db: TestDatabase,
  input: unknown,
  options: {
    migrationsDirectory?: string;
    settings?: SettingsOverrides;
    onEvent?: (event: EventLog) => void;
    dataApi?: DataApiEmulator;
    maxMigrateCallsPerExecution?: number;
  } = {},
): Promise<LocalExecutionResult> {
  return runLocalExecution({
    databaseUrl: db.url,
    migrationsDirectory: options.migrationsDirectory ?? DEMO_MIGRATIONS,
    drainSource: DRAIN,
    input,
    settings: options.settings ?? SETTINGS,
    waitMs: 50,
    retryMs: 50,
    onEvent: options.onEvent,
    dataApi: options.dataApi,
    maxMigrateCallsPerExecution: options.maxMigrateCallsPerExecution,
  });
}

/** The states the execution entered, in order (what the console's event history lists). */
function entered(result: LocalExecutionResult): string[] {
  return result.events.flatMap((e) => (e.type === 'StateEntered' ? [e.state.name] : []));
}

/** Consecutive repeats collapsed: the path through the graph, loops shown once per pass. */
function path(states: string[]): string[] {
  return states.filter((s, i) => s !== states[i - 1]);
}

const version = async (db: TestDatabase) => formatVersion((await readState(db.client)).version);

async function leaseRows(db: TestDatabase): Promise<{ owner: string }[]> {
  return (await db.pool.query<{ owner: string }>('SELECT owner FROM emc.lease')).rows;
}

async function columnsOfImages(db: TestDatabase): Promise<string[]> {
  const result = await db.pool.query<{ column_name: string }>(
    `SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'images'
     ORDER BY ordinal_position`,
  );
  return result.rows.map((r) => r.column_name);
}

interface DrainState {
  drained: boolean;
  polls: number;
  summary: string;
}

interface Summary {
  runId: string;
  target: string;
  outcome: string;
  versionBefore: string;
  versionAfter: string;
  steps: { stepId: string; phase: string; durationMs: number; rowsAffected: number | null }[];
  rowsMigrated: number;
}

describe('a local execution of the synthesized state machine', () => {
  it('upgrades the demo database end to end, looping over migrate calls and waiting for the old release to drain', async () => {
    const db = await demoDatabase();
    // An instance of the old release is still connected: the drain gate must wait for it before contract.
    const oldApp = await connect(db, 'demo-app-old-v1');
    let oldAppClosed = false;
    const result = await execute(db, {}, {
      onEvent: (event) => {
        if (!oldAppClosed && event.type === 'StateEntered' && event.state.name === 'Wait for old tasks to drain') {
          oldAppClosed = true;
          void oldApp.end();
        }
      },
    });

    expect(result.status, result.cause).toBe('SUCCEEDED');
    const summary = result.output as Summary;
    expect(summary).toMatchObject({
      runId: result.executionArn,
      target: 'bexar',
      outcome: 'completed',
      versionBefore: '(none)',
      versionAfter: FINAL_VERSION,
    });
    expect(summary.steps.map((s) => s.stepId)).toEqual([
      'bexar_expand01',
      'bexar_expand02',
      'bexar_expand03',
      'bexar_migrate01',
      'bexar_migrate02',
      'bexar_migrate03',
      'bexar_contract01',
      'bexar_contract02',
      'bexar_contract03',
    ]);
    // migrate01 and migrate02 backfill every row, migrate03 trims every tenth name.
    expect(summary.rowsMigrated).toBe(ROWS + ROWS + ROWS / 10);

    const states = entered(result);
    expect(states.filter((s) => s === STATE_NAMES.migrate).length).toBeGreaterThan(1);
    // Read as an operator would: each loop's repeats shown once. The drain gate found the old release at least once
    // (then waited), and went on to contract only once it was gone.
    const read = path(states.filter((s) => s !== 'Migration finished?'));
    const drainStart = read.indexOf('Start waiting for old release to drain');
    const contractAt = read.indexOf(STATE_NAMES.contract);
    expect(read.slice(0, drainStart + 1)).toEqual([
      'Start upgrade',
      'Expand schema',
      'Stop after expand?',
      'Start migrating',
      'Migrate data (one batch run)',
      'Stop after migrate?',
      'Start waiting for old release to drain',
    ]);
    const drainLoop = read.slice(drainStart + 1, contractAt);
    expect(drainLoop.length % 3).toBe(2);
    expect(drainLoop.length).toBeGreaterThanOrEqual(5);
    for (let i = 0; i < drainLoop.length; i += 3) {
      const pass = drainLoop.slice(i, i + 3);
      expect(pass).toEqual(
        i + 3 < drainLoop.length
          ? ['Check old release drained', 'Old release drained?', 'Wait for old tasks to drain']
          : ['Check old release drained', 'Old release drained?'],
      );
    }
    expect(read.slice(contractAt)).toEqual(['Contract schema', 'Release lease and summarise', 'Upgrade complete']);
    const checks = result.events.flatMap((e) =>
      e.type === 'StateExited' && e.state.name === STATE_NAMES.drain ? [(e.state.output as unknown as { drain: DrainState }).drain] : [],
    );
    expect(checks[0]).toMatchObject({ drained: false, polls: 1 });
    expect(checks[0]!.summary).toContain('"demo-app-old-v1"');
    expect(checks.at(-1)).toMatchObject({ drained: true, polls: checks.length });
    // Between two migrate calls the execution asks "Migration finished?" and loops straight back.
    const migrateCalls = states.filter((s) => s === STATE_NAMES.migrate).length;
    expect(states.filter((s) => s === 'Migration finished?').length).toBe(migrateCalls);

    expect(await leaseRows(db)).toEqual([]);
    expect(await version(db)).toBe(FINAL_VERSION);
    expect(await columnsOfImages(db)).toEqual(['id', 'name', 'created_at', 'visibility', 'owner_id']);
    const rows = await db.pool.query<{ missing: number; untrimmed: number }>(
      `SELECT count(*) FILTER (WHERE owner_id IS NULL)::int AS missing,
              count(*) FILTER (WHERE name <> btrim(name))::int AS untrimmed FROM images`,
    );
    expect(rows.rows[0]).toEqual({ missing: 0, untrimmed: 0 });
  });

  it('fails a broken migrate step with a Cause that names the state, the step, the SQLSTATE and what to do next', async () => {
    const db = await demoDatabase();
    const migrations = demoMigrationsWith({
      'bexar/migrate01_backfill_visibility.sql': [
        '-- emc:keyset table=images key=id',
        '-- emc:pending SELECT count(*) FROM images WHERE visibility IS NULL',
        'UPDATE images',
        "SET visibility = CASE WHEN name::int > 0 THEN 'public' ELSE 'private' END",
        'WHERE id BETWEEN :from_key AND :to_key',
        '  AND visibility IS NULL;',
        '',
      ].join('\n'),
    });

    const result = await execute(db, {}, { migrationsDirectory: migrations });

    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('StepFailedError');
    const cause = result.cause ?? '';
    expect(cause).toMatch(/^"Migrate data \(one batch run\)" failed with StepFailedError: /);
    expect(cause).toContain('Step bexar_migrate01 failed (SQLSTATE 22P02)');
    expect(cause).toContain('invalid input syntax for type integer');
    expect(cause).toMatch(/\nNext: Fix bexar_migrate01's SQL/);
    expect(cause).toMatch(/\nDatabase version now: bexar_expand03$/);
    // The Cause is the message an operator reads, not Lambda's JSON envelope with its stack trace.
    expect(cause).not.toContain('errorType');

    const states = entered(result);
    expect(states.slice(-2)).toEqual(['Record failure', 'Upgrade failed']);
    expect(states).not.toContain(STATE_NAMES.drain);
    expect(states).not.toContain(STATE_NAMES.contract);
    // A failed SQL step is not transient: no retry, straight to the failure path.
    expect(result.events.filter((e) => e.type === 'StateRetried')).toEqual([]);

    expect(await leaseRows(db)).toEqual([]);
    expect(await version(db)).toBe(EXPAND_HEAD);
    const failed = (await readHistory(db.client, result.executionArn)).filter((h) => h.outcome === 'failed');
    expect(failed.map((h) => h.stepId)).toEqual(['bexar_migrate01']);
    expect(failed[0]!.error).toContain('SQLSTATE 22P02');
    // The batch's transaction was rolled back: no row got a visibility.
    const done = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM images WHERE visibility IS NOT NULL');
    expect(done.rows[0]!.n).toBe(0);
  });

  it('retries a step that timed out on a lock the application holds, and then succeeds', async () => {
    const db = await demoDatabase(100);
    const application = await connect(db, 'demo-app-new');
    await application.query('BEGIN');
    await application.query('LOCK TABLE images IN ACCESS EXCLUSIVE MODE');
    let released: Promise<unknown> | undefined;

    const result = await execute(db, {}, {
      settings: { ...SETTINGS, lockTimeoutMs: 100 },
      onEvent: (event) => {
        if (!released && event.type === 'StateRetried') released = application.query('COMMIT');
      },
    });
    await released;

    expect(result.status, result.cause).toBe('SUCCEEDED');
    expect(released).toBeDefined();
    const failures = result.events.flatMap((e) => (e.type === 'StateFailed' ? [[e.state.name, e.Error]] : []));
    expect(failures[0]).toEqual([STATE_NAMES.expand, 'LockTimeoutError']);
    const retries = result.events.flatMap((e) => (e.type === 'StateRetried' ? [e] : []));
    expect(retries.length).toBeGreaterThanOrEqual(1);
    expect(retries[0]!.state.name).toBe(STATE_NAMES.expand);
    expect(retries[0]!.retry.retrier.ErrorEquals).toEqual(['LockTimeoutError']);
    expect(entered(result)).not.toContain('Record failure');
    expect((result.output as Summary).versionAfter).toBe(FINAL_VERSION);
    expect(await leaseRows(db)).toEqual([]);
    // The timed-out attempt left a failed history row; the retry applied the step.
    const history = await readHistory(db.client, result.executionArn);
    expect(history.filter((h) => h.stepId === 'bexar_expand01').map((h) => h.outcome)).toEqual(
      expect.arrayContaining(['failed', 'succeeded']),
    );
  });

  it('stops after migrate when asked, and a later execution finishes the upgrade', async () => {
    const db = await demoDatabase(1000);

    const first = await execute(db, { stopAfter: 'migrate' });

    expect(first.status, first.cause).toBe('SUCCEEDED');
    expect(first.output).toMatchObject({ outcome: 'stopped after migrate', versionBefore: '(none)', versionAfter: EXPAND_HEAD });
    const firstStates = entered(first);
    expect(firstStates).not.toContain(STATE_NAMES.drain);
    expect(firstStates).not.toContain(STATE_NAMES.contract);
    expect(firstStates.slice(-3)).toEqual(['Stop after migrate?', STATE_NAMES.finish, 'Upgrade complete']);
    expect(await leaseRows(db)).toEqual([]);
    expect(await version(db)).toBe(EXPAND_HEAD);
    // Both releases can still run: the old columns are there.
    expect(await columnsOfImages(db)).toEqual(['id', 'name', 'owner', 'is_public', 'created_at', 'visibility', 'owner_id']);

    const second = await execute(db, {});

    expect(second.status, second.cause).toBe('SUCCEEDED');
    const summary = second.output as Summary;
    expect(summary).toMatchObject({ outcome: 'completed', versionBefore: EXPAND_HEAD, versionAfter: FINAL_VERSION });
    expect(summary.steps.map((s) => s.stepId)).toEqual(['bexar_contract01', 'bexar_contract02', 'bexar_contract03']);
    expect(summary.rowsMigrated).toBe(0);
    expect(await version(db)).toBe(FINAL_VERSION);
    expect(await leaseRows(db)).toEqual([]);
  });

  it('refuses bad input in "Start upgrade", naming every bad field, before touching the database', async () => {
    const db = await demoDatabase(10);

    const result = await execute(db, { stopAfter: 'later', bogus: 1 });

    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('InputError');
    expect(result.cause).toMatch(/^"Start upgrade" failed with InputError: Invalid execution input: /);
    expect(result.cause).toContain('"stopAfter"');
    expect(result.cause).toContain('"bogus"');
    expect(result.cause).toContain('Next: Correct the execution input');
    expect(result.cause).toMatch(/Database version now: \(none\)$/);
    expect(entered(result)).toEqual(['Start upgrade', 'Record failure', 'Upgrade failed']);
    const schema = await db.pool.query<{ oid: string | null }>(`SELECT to_regnamespace('emc')::text AS oid`);
    expect(schema.rows[0]!.oid).toBeNull();
    expect(await columnsOfImages(db)).toEqual(['id', 'name', 'owner', 'is_public', 'created_at']);
  });

  it('retries a call refused while Aurora resumes (DatabaseResumingException) and then succeeds', async () => {
    const db = await demoDatabase(100);
    const dataApi = await startDataApiEmulator({ postgresUrl: db.url });
    try {
      // Inside a transaction the client never repeats a statement itself: the state machine retries the whole step.
      dataApi.injectFault({ error: 'DatabaseResumingException', operation: 'ExecuteStatement', sqlIncludes: 'ALTER TABLE images ADD COLUMN visibility', times: 1 });

      const result = await execute(db, {}, { dataApi });

      expect(result.status, result.cause).toBe('SUCCEEDED');
      const retries = result.events.flatMap((e) => (e.type === 'StateRetried' ? [e] : []));
      expect(retries.map((r) => [r.state.name, r.retry.retrier.ErrorEquals])).toEqual([
        [STATE_NAMES.expand, ['DatabaseResumingError', 'DatabaseUnavailableError']],
      ]);
      expect((result.output as Summary).versionAfter).toBe(FINAL_VERSION);
      expect(await leaseRows(db)).toEqual([]);
    } finally {
      await dataApi.stop();
    }
  });

  it('goes on in a new execution before the history limit, which takes the lease over and finishes without redoing a batch', async () => {
    const db = await demoDatabase(1000);
    let batchesWhileContinuing = 0;

    // Fixed 100-row batches (targetBatchMs 0): two migrate calls of 1 s cannot finish, however fast this machine is.
    const first = await execute(db, {}, {
      maxMigrateCallsPerExecution: 2,
      settings: { ...SETTINGS, batchSize: 100, targetBatchMs: 0, migrateBudgetMs: 1000 },
    });

    expect(first.status, first.cause).toBe('SUCCEEDED');
    expect(first.output).toMatchObject({ outcome: 'continued in a new execution' });
    expect(entered(first).filter((s) => s === STATE_NAMES.migrate)).toHaveLength(2);
    expect(entered(first).slice(-3)).toEqual(['Prepare continuation', 'Continue in a new execution', 'Upgrade complete']);
    const chain: LocalExecutionResult[] = [first];
    for (let next = first.continuedIn; next; next = next.continuedIn) chain.push(next);
    expect(chain.length).toBeGreaterThan(1);
    for (const [i, run] of chain.entries()) {
      expect(run.status, run.cause).toBe('SUCCEEDED');
      if (i > 0) expect(entered(run)[0]).toBe('Start upgrade');
      if (i > 0) batchesWhileContinuing += entered(run).filter((s) => s === STATE_NAMES.migrate).length;
      // Every execution but the last hands over to the next one: its output names it.
      if (i < chain.length - 1) expect(run.output).toEqual({ outcome: 'continued in a new execution', continuedIn: chain[i + 1]!.executionArn });
    }
    expect(batchesWhileContinuing).toBeGreaterThan(0);
    const last = chain.at(-1)!;
    expect(last.output).toMatchObject({ outcome: 'completed', versionAfter: FINAL_VERSION });
    expect(await version(db)).toBe(FINAL_VERSION);
    expect(await leaseRows(db)).toEqual([]);
    // Each row was migrated once, over all the executions: migrate01 and migrate02 every row, migrate03 every tenth.
    const migrated = await db.pool.query<{ n: number }>(
      `SELECT sum(rows_done)::int AS n FROM emc.migrate_progress`,
    );
    expect(migrated.rows[0]!.n).toBe(1000 + 1000 + 100);
  });

  it('refuses to start while another upgrade holds the lease, and leaves that lease alone', async () => {
    const db = await demoDatabase(10);
    await ensureStateSchema(db.client);
    const held = await acquireLease(db.client, 'someone-else', 900);

    const result = await execute(db, {});

    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('LeaseHeldError');
    expect(result.cause).toMatch(/^"Start upgrade" failed with LeaseHeldError: /);
    expect(result.cause).toContain(`held by someone-else until ${held.expiresAt.toISOString()}`);
    expect(result.cause).toContain('Next: Wait for the other upgrade to finish');
    expect(entered(result)).toEqual(['Start upgrade', 'Record failure', 'Upgrade failed']);
    expect(await currentLease(db.client)).toEqual(held);
    expect(await version(db)).toBe('(none)');
    expect(await columnsOfImages(db)).toEqual(['id', 'name', 'owner', 'is_public', 'created_at']);
  });
});

/** The demo migrations with some files replaced, in a temporary directory. */
function demoMigrationsWith(replaced: Record<string, string>): string {
  const files: Record<string, string> = {};
  for (const name of readdirSync(join(DEMO_MIGRATIONS, 'bexar'))) {
    files[`bexar/${name}`] = readFileSync(join(DEMO_MIGRATIONS, 'bexar', name), 'utf8');
  }
  for (const path of Object.keys(replaced)) {
    if (!(path in files)) throw new Error(`${path} is not a demo migration`);
  }
  return writeMigrations({ ...files, ...replaced }, ['bexar']);
}
