import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedDemoDatabase } from '../bin/local/demo-database.ts';
import { runLocalExecution, type LocalExecutionResult } from '../bin/local/run-local-execution.ts';
import { synthesizeStateMachine } from '../bin/local/synthesized-state-machine.ts';
import { readHistory } from '../lambdas/core/index.ts';
import { DrainSource } from '../lib/drain-source.ts';
import { DEMO_MIGRATIONS, writeMigrations } from './support/catalog-fixtures.ts';
import type { TestDatabase } from './support/database.ts';
import { createOwnedDatabase } from './support/database-templates.ts';
import { recordFigures, type Figure } from './support/reliability-figures.ts';

/**
 * Nothing secret and no row data in the logs or the execution history. The database is owned by an ordinary role
 * (no superuser) whose password is in the database URL; its rows carry a marker string, and their keys (hence the
 * migrate cursors) a marker prefix. A whole local execution (start, expand, migrate in several calls, drain,
 * contract, finish) and a failing one run with the handlers' logger at DEBUG; every line it writes and every event
 * of the execution history (inputs and outputs of every state) is searched for the markers.
 */
const PASSWORD = 'pw-Secr3t-4c1d-marker';
const ROW_MARKER = 'rowdata-9e2b-marker';
const OWNER_MARKER = 'tenant-7d01-marker';
/** Every key is 4242424201..4242424500: migrate cursors, being keys, start with this too. */
const KEY_BASE = 4_242_424_200;
const KEY_MARKER = '4242424';
const ROWS = 300;
const MARKERS = { password: PASSWORD, 'row data': ROW_MARKER, 'owner data': OWNER_MARKER, 'key (cursor) values': KEY_MARKER };
const figures: Figure[] = [];

let db: TestDatabase & { role: string };
beforeAll(async () => {
  db = await createOwnedDatabase(PASSWORD);
  await seedDemoDatabase(db.client, ROWS);
  await db.pool.query(
    `UPDATE images SET id = id + $1,
       name = CASE WHEN id % 10 = 0 THEN ' ' || $2 || '-' || id || ' ' ELSE $2 || '-' || id END,
       owner = $3 || '-' || (id % 7)`,
    [KEY_BASE, ROW_MARKER, OWNER_MARKER],
  );
});
afterAll(async () => {
  await recordFigures('security', 'test/reliability-security.test.ts', figures);
  await db.drop();
});

/** Runs an execution with the functions logging at DEBUG, capturing every line they write to stdout and stderr. */
async function captured(migrationsDirectory: string): Promise<{ result: LocalExecutionResult; logs: string }> {
  const lines: string[] = [];
  const result = await runLocalExecution({
    databaseUrl: db.url,
    migrationsDirectory,
    drainSource: DrainSource.databaseSessions('demo-app-old%'),
    input: {},
    // Fixed 100-row batches (targetBatchMs 0) with a pause: migrate needs several 1 s calls however fast the machine.
    settings: { batchSize: 100, targetBatchMs: 0, batchPauseMs: 250, migrateBudgetMs: 1000 },
    waitMs: 20,
    retryMs: 20,
    logLevel: 'DEBUG',
    onLog: (line) => lines.push(line),
  });
  return { result, logs: lines.join('\n') };
}

/** Which markers `text` contains, by kind. */
function leaks(text: string): string[] {
  return Object.entries(MARKERS).flatMap(([kind, marker]) => (text.includes(marker) ? [kind] : []));
}

describe('logs and execution history', () => {
  it('hold no password, no row data and no cursor of a whole upgrade run by a database owner that is not a superuser', async () => {
    expect(db.url).toContain(PASSWORD);
    const role = await db.pool.query(`SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user`);
    expect(role.rows[0]).toEqual({ rolsuper: false, rolcreatedb: false, rolcreaterole: false });

    const { result, logs } = await captured(DEMO_MIGRATIONS);

    expect(result.status, result.cause).toBe('SUCCEEDED');
    expect(result.output).toMatchObject({ versionAfter: 'bexar_expand03, bexar_contract03', rowsMigrated: ROWS * 2 + ROWS / 10 });
    // The search is not vacuous: the logs hold every task's lines and every batch, the history every state's data.
    const lines = logs.split('\n').filter((l) => l.startsWith('{'));
    const messages = new Set(lines.map((l) => (JSON.parse(l) as { message: string }).message));
    for (const message of ['upgrade planned', 'step-started', 'batch', 'step-succeeded', 'old release drained']) {
      expect(messages, message).toContain(message);
    }
    const migrateCalls = result.events.filter((e) => e.type === 'StateEntered' && e.state.name === 'Migrate data (one batch run)').length;
    expect(migrateCalls).toBeGreaterThan(1);
    // ...and the rows really hold the markers, and the migrate progress a cursor with the key prefix.
    const rows = await db.pool.query(`SELECT count(*)::int AS n FROM images WHERE name LIKE '%' || $1 || '%' AND id::text LIKE $2 || '%'`, [ROW_MARKER, KEY_MARKER]);
    expect(rows.rows[0].n).toBe(ROWS);
    const cursors = await db.pool.query(`SELECT cursor FROM emc.migrate_progress WHERE cursor IS NOT NULL`);
    expect(cursors.rows.map((r) => String(r.cursor).slice(0, KEY_MARKER.length))).toContain(KEY_MARKER);

    const history = JSON.stringify(result.events);
    expect({ logs: leaks(logs), history: leaks(history), output: leaks(JSON.stringify(result.output)) }).toEqual({
      logs: [],
      history: [],
      output: [],
    });
    figures.push({
      check: 'Whole local execution, logger at DEBUG: password, row data, owner data and key/cursor markers searched',
      tried: lines.length + result.events.length,
      passed: lines.length + result.events.length,
      detail: `${lines.length} log lines and ${result.events.length} execution-history events (${migrateCalls} migrate calls), none holding a marker; run as a database owner without superuser, createdb or createrole`,
    });
  });

  it('hold no row data when a migrate step fails on a row value', async () => {
    // Back to release n-1's shape (the first test upgraded the table).
    await db.pool.query(`DROP SCHEMA IF EXISTS emc CASCADE`);
    await db.pool.query(`DROP TABLE IF EXISTS images`);
    await db.pool.query(`DROP FUNCTION IF EXISTS images_sync_visibility(), images_sync_owner()`);
    await seedDemoDatabase(db.client, ROWS);
    await db.pool.query(`UPDATE images SET id = id + $1, name = $2 || '-' || id, owner = $3 || '-' || (id % 7)`, [KEY_BASE, ROW_MARKER, OWNER_MARKER]);
    const files: Record<string, string> = {};
    for (const name of readdirSync(join(DEMO_MIGRATIONS, 'bexar'))) {
      files[`bexar/${name}`] = readFileSync(join(DEMO_MIGRATIONS, 'bexar', name), 'utf8');
    }
    // A broken backfill: the cast fails on the first row, and PostgreSQL's message quotes the row's value.
    files['bexar/migrate01_backfill_visibility.sql'] =
      '-- emc:keyset table=images key=id\n' +
      '-- emc:pending SELECT count(*) FROM images WHERE visibility IS NULL\n' +
      "UPDATE images SET visibility = CASE WHEN name::int > 0 THEN 'public' ELSE 'private' END\n" +
      'WHERE id BETWEEN :from_key AND :to_key AND visibility IS NULL;\n';

    const { result, logs } = await captured(writeMigrations(files, ['bexar']));

    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('StepFailedError');
    expect(result.cause).toContain('Step bexar_migrate01 failed (SQLSTATE 22P02): invalid input syntax for type integer');
    expect(logs).toContain('"task failed"');
    const history = JSON.stringify(result.events);
    expect({ logs: leaks(logs), history: leaks(history), cause: leaks(result.cause ?? '') }).toEqual({ logs: [], history: [], cause: [] });
    // The tool's own history table, inside the database, says which step failed and why, without the value either.
    const failed = (await readHistory(db.client, result.executionArn)).filter((h) => h.outcome === 'failed');
    expect(failed.map((h) => h.stepId)).toEqual(['bexar_migrate01']);
    figures.push({
      check: 'Failed execution (a cast error on a row value, whose PostgreSQL message quotes the value)',
      tried: 1,
      passed: 1,
      detail: 'the Cause, the logs and the execution history name the step, the file and the SQLSTATE, and hold no marker',
    });
  });
});

describe('the deployed log groups', () => {
  it('all have a retention and a customer-managed KMS key', () => {
    const { template } = synthesizeStateMachine({ migrationsDirectory: DEMO_MIGRATIONS, drainSource: DrainSource.databaseSessions('demo-app-old%') });
    const resources = (template as { Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }> }).Resources;
    const logGroups = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::Logs::LogGroup');
    expect(logGroups.length).toBe(8); // seven functions and the state machine
    for (const [id, group] of logGroups) {
      expect(group.Properties?.RetentionInDays, id).toBeGreaterThan(0);
      const key = (group.Properties?.KmsKeyId as { 'Fn::GetAtt'?: [string, string] } | undefined)?.['Fn::GetAtt']?.[0];
      expect(resources[key ?? '']?.Type, id).toBe('AWS::KMS::Key');
    }
  });
});
