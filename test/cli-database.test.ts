import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { seedDemoDatabase } from '../bin/local/demo-database.ts';
import type { DatabaseReport } from '../bin/cli/version.ts';
import { contract, expand, loadCatalog, type Catalog, type Plan } from '../lambdas/core/index.ts';
import { DEMO_MIGRATIONS, writeMigrations } from './support/catalog-fixtures.ts';
import { runEmc } from './support/cli-harness.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { endRun, migrateToEnd, startRun } from './support/engine.ts';

// `emc version`, `check` and `plan` read the database directly, here the real PostgreSQL of the test run.
const databases: TestDatabase[] = [];
afterEach(async () => {
  for (const db of databases.splice(0)) await db.drop();
});

let catalog: Catalog;
beforeAll(async () => {
  catalog = await loadCatalog(DEMO_MIGRATIONS);
});

async function demoDatabase(rows = 300): Promise<TestDatabase> {
  const db = await createTestDatabase();
  databases.push(db);
  await seedDemoDatabase(db.client, rows);
  return db;
}

const emc = (command: string, db: TestDatabase, ...args: string[]) =>
  runEmc([command, '--database-url', db.url, '--migrations', DEMO_MIGRATIONS, ...args]);

describe('emc check', () => {
  it('exits 3, 4, 5 while expand, migrate, contract are pending and 0 once the database is at the target', async () => {
    const db = await demoDatabase();
    const codes: number[] = [];
    const check = async () => {
      const run = await emc('check', db, '--json');
      codes.push(run.exitCode);
      return run.json<DatabaseReport & { exitCode: number }>();
    };

    expect(await check()).toMatchObject({ version: '(none)', nextPhase: 'expand', upToDate: false, exitCode: 3 });
    const ctx = await startRun(db.client);
    await expand(ctx, catalog);
    expect(await check()).toMatchObject({ version: 'bexar_expand03', nextPhase: 'migrate', pending: { expand: [] }, exitCode: 4 });
    await migrateToEnd(ctx, catalog);
    expect(await check()).toMatchObject({
      nextPhase: 'contract',
      pending: { expand: [], migrate: [], contract: ['bexar_contract01', 'bexar_contract02', 'bexar_contract03'] },
      exitCode: 5,
    });
    await contract(ctx, catalog, undefined, { drainConfirmed: true });
    await endRun(ctx);
    expect(await check()).toMatchObject({ version: 'bexar_expand03, bexar_contract03', nextPhase: null, upToDate: true, exitCode: 0 });

    expect(codes).toEqual([3, 4, 5, 0]);
  });

  it('prints the version and pending steps in text', async () => {
    const db = await demoDatabase();
    const run = await emc('check', db);
    expect(run.exitCode).toBe(3);
    expect(run.stdout).toBe(
      [
        'Version           (none)',
        'Target release    bexar',
        'State             expand pending',
        'Pending expand    3: bexar_expand01, bexar_expand02, bexar_expand03',
        'Pending migrate   3: bexar_migrate01, bexar_migrate02, bexar_migrate03',
        'Pending contract  3: bexar_contract01, bexar_contract02, bexar_contract03',
        '',
      ].join('\n'),
    );
  });
});

describe('emc version', () => {
  it('reads the composite version and pending steps, exit 0 whatever is pending', async () => {
    const db = await demoDatabase();
    const ctx = await startRun(db.client);
    await expand(ctx, catalog);
    await endRun(ctx);

    const run = await runEmc(['version', '--migrations', DEMO_MIGRATIONS, '--json'], { env: { EMC_DATABASE_URL: db.url } });

    expect(run.exitCode).toBe(0);
    expect(run.json()).toEqual({
      version: 'bexar_expand03',
      target: 'bexar',
      nextPhase: 'migrate',
      upToDate: false,
      pending: {
        expand: [],
        migrate: ['bexar_migrate01', 'bexar_migrate02', 'bexar_migrate03'],
        contract: ['bexar_contract01', 'bexar_contract02', 'bexar_contract03'],
      },
      contractBlockedBy: expect.any(Array),
      lease: null,
    });
  });
});

describe('emc plan', () => {
  it('shows what an execution would run, without running it', async () => {
    const db = await demoDatabase();

    const run = await emc('plan', db, '--release', 'bexar', '--json');

    expect(run.exitCode).toBe(0);
    const planned = run.json<Plan>();
    expect(planned).toMatchObject({ target: 'bexar', version: '(none)', nextPhase: 'expand', lease: null });
    expect(planned.pending.expand.map((s) => s.file)).toEqual([
      'bexar/expand01_add_visibility.sql',
      'bexar/expand02_add_owner_id.sql',
      'bexar/expand03_index_owner_id.sql',
    ]);
    expect(planned.pending.migrate.map((s) => [s.stepId, s.strategy, s.rowsDone])).toEqual([
      ['bexar_migrate01', expect.any(String), 0],
      ['bexar_migrate02', 'keyset', 0],
      ['bexar_migrate03', expect.any(String), 0],
    ]);
    // Read-only: not even the tool's own schema was created.
    const schemas = await db.pool.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'emc_upgrade'`);
    expect(schemas.rowCount).toBe(0);

    const text = await emc('plan', db);
    expect(text.stdout).toContain('PHASE     STEP              FILE');
    expect(text.stdout).toContain('migrate   bexar_migrate02   bexar/migrate02_backfill_owner_id.sql    keyset');
  });

  it('reports the checks a file overrides, with the reason and what was allowed', async () => {
    const db = await demoDatabase();
    const migrations = writeMigrations({
      'r1/expand01_add_note.sql': 'ALTER TABLE images ADD COLUMN note text;\n',
      'r1/migrate01_fill_note.sql':
        "-- emc:keyset table=images key=id\n-- emc:no-pending the new release fills note itself on every read\nUPDATE images SET note = '' WHERE id BETWEEN :from_key AND :to_key;\n",
      'r1/contract01_drop_owner.sql': 'ALTER TABLE images DROP COLUMN owner;\n',
    });

    const run = await runEmc(['plan', '--database-url', db.url, '--migrations', migrations]);

    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain(
      'Checks overridden by emc:allow-destructive or emc:no-pending, with their reasons:\n' +
        '  - r1_migrate01: the new release fills note itself on every read\n' +
        '      no "emc:pending" query: contract does not check that this step left no row to migrate\n',
    );
  });

  it('refuses an unknown release (exit 2)', async () => {
    const db = await demoDatabase();
    const run = await emc('plan', db, '--release', 'nope');
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toBe(
      'emc: Unknown release "nope": the migrations ship "bexar".\n' +
        'Next: Correct the execution input and start a new execution; the database was not touched.\n',
    );
  });
});

describe('database and catalog errors', () => {
  it('says the database is unreachable (exit 8)', async () => {
    const run = await runEmc(['check', '--database-url', 'postgres://emc@127.0.0.1:1/nowhere', '--migrations', DEMO_MIGRATIONS, '--json']);
    expect(run.exitCode).toBe(8);
    expect(run.stderr).toBe(
      'emc: Cannot read the database: connect ECONNREFUSED 127.0.0.1:1\n' +
        'Next: Check --database-url (or --cluster-arn, --secret-arn and --database for the Data API), the network path and the credentials, then run the command again.\n',
    );
    expect(run.json()).toMatchObject({ ok: false, exitCode: 8, error: 'DatabaseUnreachableError' });
  });

  it('asks for a database when none is given (exit 2)', async () => {
    const run = await runEmc(['version', '--migrations', DEMO_MIGRATIONS]);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toMatch(/^emc: No database given\.\nNext: Pass --database-url postgres:\/\/\.\.\. \(or set EMC_DATABASE_URL\)/);
  });

  it('lists the problems of an invalid migrations directory (exit 9)', async () => {
    const db = await demoDatabase(10);
    const migrations = writeMigrations({ 'r1/expand01_ok.sql': 'SELECT 1;\n', 'r1/expand1_bad name.sql': 'SELECT 1;\n' });
    const run = await runEmc(['check', '--database-url', db.url, '--migrations', migrations]);
    expect(run.exitCode).toBe(9);
    expect(run.stderr).toMatch(/^emc: The migrations catalog has 1 problem:\n {2}- r1\/expand1_bad name\.sql: /);
  });

  it('reports drift of an applied step (exit 11)', async () => {
    const db = await createTestDatabase();
    databases.push(db);
    const migrations = writeMigrations({ 'r1/expand01_create_t.sql': 'CREATE TABLE t (id int);\n' });
    const ctx = await startRun(db.client);
    await expand(ctx, await loadCatalog(migrations));
    await endRun(ctx);
    writeFileSync(join(migrations, 'r1/expand01_create_t.sql'), 'CREATE TABLE t (id bigint);\n');

    const run = await runEmc(['check', '--database-url', db.url, '--migrations', migrations]);

    expect(run.exitCode).toBe(11);
    expect(run.stderr).toMatch(/^emc: Applied migration steps have changed since they were applied:\n {2}- r1_expand01: applied with checksum sha256:/);
  });
});
