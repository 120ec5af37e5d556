import pg from 'pg';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { describeConnectionString, HIDDEN_CONNECTION_STRING } from '../bin/cli/connection-string.ts';
import { runLocalDemo, type LocalDemoResult } from '../bin/local/local-demo.ts';
import { loadSqlFiles, readSqlFiles, SqlFileError } from '../bin/local/sql-dump.ts';
import { versionTable } from '../bin/local/version-table.ts';
import type { HistoryEntry } from '../lambdas/core/state/history.ts';
import { STATE_NAMES } from '../lambdas/core/workflow/state-names.ts';
import { writeMigrations } from './support/catalog-fixtures.ts';
import { runEmc } from './support/cli-harness.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

const PASSWORD = 'hunter2-secret';

/** A release of someone else's application: not the demo's, so no demo workload can run on it. */
const OWN_MIGRATIONS = {
  'r1/expand01_add_label.sql': 'ALTER TABLE gadgets ADD COLUMN label text;\n',
  'r1/contract01_drop_old_name.sql': 'ALTER TABLE gadgets DROP COLUMN old_name;\n',
};

describe('connection strings are never printed with their password', () => {
  it.each([
    [`postgres://app:${PASSWORD}@db.example.com:5432/orders`, 'postgres://app:***@db.example.com:5432/orders'],
    [`postgres://app@db.example.com/orders?password=${PASSWORD}&sslmode=verify-full`, 'postgres://app:***@db.example.com/orders'],
    [`postgresql://app:p%40ss-${PASSWORD}@db/orders`, 'postgres://app:***@db/orders'],
    [`socket:/var/run/postgresql?db=orders&password=${PASSWORD}`, 'postgres://:***@/var/run/postgresql/orders'],
    ['postgres://db.example.com/orders', 'postgres://db.example.com/orders'],
    // keyword/value (libpq), which node-postgres does not read, and malformed URLs: hidden whole.
    [`host=db.example.com user=app password=${PASSWORD} dbname=orders`, HIDDEN_CONNECTION_STRING],
    [`postgres://app:${PASSWORD}@db.example.com:99999/orders`, HIDDEN_CONNECTION_STRING],
    [`postgres://app:${PASSWORD}@[::1/orders`, HIDDEN_CONNECTION_STRING],
    [`app:${PASSWORD}@db.example.com/orders`, HIDDEN_CONNECTION_STRING],
  ])('%s -> %s', (input, shown) => {
    expect(describeConnectionString(input)).toBe(shown);
  });

  it.each([
    ['local', '--database-url'],
    ['check', '--database-url'],
  ])('emc %s refuses a connection string it cannot read, without echoing it', async (command, option) => {
    for (const url of [`host=db.example.com password=${PASSWORD}`, `postgres://app:${PASSWORD}@db:99999/x`]) {
      const run = await runEmc([command, option, url], { runLocalDemo });
      expect(run.exitCode).toBe(2);
      expect(run.stderr).toContain(`${option} is not a PostgreSQL URL`);
      expect(run.stdout + run.stderr).not.toContain(PASSWORD);
    }
  });
});

describe('emc local with your own migrations', () => {
  let db: TestDatabase;
  let ownMigrations: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    ownMigrations = writeMigrations(OWN_MIGRATIONS);
  });
  afterAll(async () => {
    await db.drop();
  });

  it('refuses to start without --drain-sessions (the demo pattern would not see your old release)', async () => {
    const run = await runEmc(['local', '--database-url', db.url, '--migrations', ownMigrations], { runLocalDemo });
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain('--drain-sessions is required with --migrations');
    // Nothing ran: the database is unchanged (not even the engine's own schema).
    const schemas = await db.pool.query(`SELECT nspname FROM pg_namespace WHERE nspname = 'emc'`);
    expect(schemas.rowCount).toBe(0);
  });

  it.each(['%', '  ', '%%'])('refuses --drain-sessions %j, which matches every session', async (pattern) => {
    const run = await runEmc(['local', '--database-url', db.url, '--migrations', ownMigrations, '--drain-sessions', pattern], { runLocalDemo });
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain('--drain-sessions: needs a LIKE pattern');
  });

  describe('with --drain-sessions', () => {
    let result: LocalDemoResult;
    const lines: string[] = [];
    let oldRelease: pg.Client;
    let password: string;

    beforeAll(async () => {
      await db.pool.query(`CREATE TABLE gadgets (id int PRIMARY KEY, old_name text)`);
      // An old-release instance named otherwise than the demo's: the gate must wait for it.
      oldRelease = new pg.Client({ connectionString: db.url, application_name: 'gadgets-v1' });
      oldRelease.on('error', () => {});
      await oldRelease.connect();
      // The password as a query parameter, which a regex over user:password@ would miss.
      const url = new URL(db.url);
      password = url.password;
      url.password = '';
      url.searchParams.set('password', password);
      let stopped = false;
      result = await runLocalDemo({
        databaseUrl: url.toString(),
        migrationsDirectory: ownMigrations,
        drainSessions: 'gadgets-v1%',
        out: (line) => {
          lines.push(line);
          if (!stopped && line.startsWith('  <- Check old release drained')) {
            stopped = true;
            void oldRelease.end();
          }
        },
      });
    }, 120_000);

    it('waits for the old release named by the pattern before contract', () => {
      expect(result.execution.status).toBe('SUCCEEDED');
      const drains = lines.filter((l) => l.startsWith('  <- Check old release drained'));
      expect(drains[0]).toContain('1 session of "gadgets-v1" connected');
      expect(drains.at(-1)).toContain("no session with application_name LIKE 'gadgets-v1%'");
    });

    it('never claims that no write was lost when no workload ran', () => {
      expect(result.workloads).toEqual([]);
      expect(lines.join('\n')).not.toContain('no failed and no lost write');
      expect(lines.at(-1)).toBe(
        "Upgrade completed. No demo workload ran (these are your own migrations; the demo application only writes to the demo's schema), so no application write was checked.",
      );
    });

    it('prints the database URL without its password', () => {
      expect(password.length).toBeGreaterThan(3);
      expect(lines.join('\n')).not.toContain(password);
      expect(lines).toContain(`Using ${describeConnectionString(db.url)}.`);
      expect(lines.some((l) => /^Using postgres:\/\/[^:]+:\*\*\*@/.test(l))).toBe(true);
    });
  });
});

describe('emc local refuses what cdk synth refuses, before any database is touched', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  it.each([
    ['an invalid catalog: exit 9, naming the file', { 'r1/expand01_rename.sql': 'ALTER TABLE gadgets RENAME COLUMN a TO b;\n' }, 9, 'r1/expand01_rename.sql'],
    [
      'a lock-safety finding: exit 12, as emc lint',
      { 'r1/expand01_index.sql': 'CREATE INDEX gadgets_label_idx ON gadgets (label);\n' },
      12,
      'r1/expand01_index.sql:1: require-concurrent-index-creation',
    ],
  ])('%s', async (_, files, exitCode, named) => {
    const run = await runEmc(['local', '--database-url', db.url, '--migrations', writeMigrations(files), '--drain-sessions', 'gadgets-v1%'], { runLocalDemo });
    expect(run.exitCode).toBe(exitCode);
    expect(run.stderr).toContain(named);
    expect(run.stdout).not.toContain('Synthesizing');
    const schemas = await db.pool.query(`SELECT nspname FROM pg_namespace WHERE nspname = 'emc'`);
    expect(schemas.rowCount).toBe(0);
  });
});

describe('emc local when a contract step fails', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await db.pool.query(`CREATE TABLE gadgets (id int PRIMARY KEY, old_name text)`);
  });
  afterAll(async () => {
    await db.drop();
  });

  it('prints the failure, the step history and the version table, and exits 1', async () => {
    const broken = writeMigrations({
      'r1/expand01_add_label.sql': 'ALTER TABLE gadgets ADD COLUMN label text;\n',
      'r1/contract01_drop_old_name.sql': 'ALTER TABLE gadgets DROP COLUMN no_such_column;\n',
    });

    const run = await runEmc(['local', '--database-url', db.url, '--migrations', broken, '--drain-sessions', 'gadgets-v1%'], { runLocalDemo });

    expect(run.exitCode).toBe(1);
    const out = run.stdout.split('\n');
    // Expand's result is still in the execution's data when contract fails: each state shows its own task's.
    expect(out).toContainEqual(expect.stringMatching(/^ {2}<- Expand schema \(\d+ ms\): r1_expand01 -> r1_expand01$/));
    expect(out).toContain('  Error: StepFailedError');
    expect(run.stdout).toContain('r1/contract01_drop_old_name.sql');
    expect(run.stdout).toContain('Step history:');
    expect(out.filter(Boolean).at(-1)).toBe('The local run did not succeed.');
    const version = await db.pool.query(`SELECT column_name FROM information_schema.columns WHERE table_name = 'gadgets' ORDER BY 1`);
    expect(version.rows.map((r) => r.column_name)).toEqual(['id', 'label', 'old_name']);
  }, 120_000);
});

/** Someone else's schema (a pg_dump 17.6 --schema-only dump) and two releases of theirs: see the fixture's README. */
const LEDGER = join(import.meta.dirname, 'fixtures/ledger-schema');
const LEDGER_SCHEMA = join(LEDGER, 'schema.sql');
const LEDGER_SEED = join(LEDGER, 'seed.sql');
const LEDGER_MIGRATIONS = join(LEDGER, 'migrations');

function tempFile(name: string, content: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'emc-local-')), name);
  writeFileSync(path, content);
  return path;
}

describe('emc local --schema: your own schema and releases', () => {
  let result: LocalDemoResult;
  let lines: string[];
  let exitCode: number;

  // Through the command, so each option is parsed as typed; the run's result is kept for the assertions on it.
  beforeAll(async () => {
    const run = await runEmc(
      [
        'local',
        ...['--schema', LEDGER_SCHEMA, '--seed', LEDGER_SEED, '--migrations', LEDGER_MIGRATIONS, '--drain-sessions', 'ledger-v0%'],
        ...['--release', 'ledger1', '--stop-after', 'migrate', '--settings', '{"batchSize":500,"targetBatchMs":0}'],
      ],
      { runLocalDemo: async (options) => (result = await runLocalDemo(options)) },
    );
    exitCode = run.exitCode;
    lines = run.stdout.split('\n').slice(0, -1);
  }, 180_000);

  it('loads the dump and the seed, then upgrades to the release asked for and stops after migrate', () => {
    expect(exitCode).toBe(0);
    expect(result.execution.status).toBe('SUCCEEDED');
    expect(lines).toContain(
      `Loaded --schema ${LEDGER_SCHEMA} (27 statements) and --seed ${LEDGER_SEED} (3 statements) into the database emc_local.`,
    );
    // ledger1 only (not the newest, ledger2), and no contract: --stop-after migrate.
    expect(result.history.map((h) => [h.stepId, h.outcome, h.rowsAffected ?? null])).toEqual([
      ['ledger1_expand01', 'succeeded', null],
      ['ledger1_migrate01', 'succeeded', 1200],
    ]);
    expect(lines.at(-1)).toMatch(/^Stopped after migrate, as --stop-after asked; .* so no application write was checked\.$/);
  });

  it('runs with the --settings given (fixed batches of 500 rows)', () => {
    const migrated = result.execution.events
      .filter((e) => e.type === 'StateExited' && 'state' in e && e.state.name === STATE_NAMES.migrate)
      .flatMap((e) => (e as unknown as { state: { output: { migrate: { steps: { stepId: string; batches: number }[] } } } }).state.output.migrate.steps);
    expect(migrated.map((s) => [s.stepId, s.batches])).toEqual([['ledger1_migrate01', 3]]);
  });

  it('says what synthesis does before its silent seconds, names the step in each migrate line, reports no application writes', () => {
    const synthesizing = lines.findIndex((l) => l.startsWith('Synthesizing the CDK app: loading and checking the migrations, bundling'));
    const synthesized = lines.findIndex((l) => /^Synthesized in \d+\.\d s\. Running its state machine/.test(l));
    expect(synthesizing).toBeGreaterThanOrEqual(0);
    expect(synthesized).toBe(synthesizing + 1);
    const migrateLines = lines.filter((l) => l.startsWith(`  <- ${STATE_NAMES.migrate}`));
    expect(migrateLines.length).toBeGreaterThan(0);
    for (const line of migrateLines) expect(line).toMatch(/: ledger1_migrate01 \d+ done, /);
    expect(lines.join('\n')).not.toContain('Application writes');
    expect(result.workloads).toEqual([]);
    expect(result.versionBefore).toBe('(none)');
  });
});

describe('emc local refuses before anything runs', () => {
  let db: TestDatabase;
  let ownMigrations: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    ownMigrations = writeMigrations(OWN_MIGRATIONS);
  });
  afterAll(async () => {
    await db.drop();
  });
  const local = (...args: string[]) =>
    runEmc(['local', '--database-url', db.url, '--migrations', ownMigrations, '--drain-sessions', 'gadgets-v1%', ...args], { runLocalDemo });

  it.each([
    // The engine's own messages, naming the field.
    ['{"batchSize":0}', '"settings.batchSize": Too small: expected number to be >=1'],
    ['{"batchsize":500}', 'unknown field "settings.batchsize"'],
    // Each value in range, but together a migrate call could outlive its function.
    ['{"migrateBudgetMs":840000,"batchStatementTimeoutMs":45000}', '"settings": migrateBudgetMs (840000 ms) + batchStatementTimeoutMs (45000 ms) + 60000 ms of margin must stay under'],
  ])('--settings %s', async (settings, message) => {
    for (const given of [settings, tempFile('settings.json', settings)]) {
      const run = await local('--settings', given);
      expect(run.exitCode).toBe(2);
      expect(run.stderr).toContain(`emc: Invalid execution input: ${message}`);
    }
    const schemas = await db.pool.query(`SELECT nspname FROM pg_namespace WHERE nspname = 'emc'`);
    expect(schemas.rowCount).toBe(0);
  });

  it.each([
    [['--settings', 'no-such-settings.json'], "--settings <file|json>' argument 'no-such-settings.json' is invalid. neither JSON nor a readable file (ENOENT)"],
    [['--settings', '{batchSize: 1}'], 'not JSON'],
    [['--release', 'r9'], 'Unknown release "r9": the migrations ship "r1".'],
    [['--stop-after', 'contract'], "argument 'contract' is invalid. Allowed choices are expand, migrate."],
    [['--schema', LEDGER_SCHEMA], '--schema loads a dump into a fresh database of the throw-away PostgreSQL; it cannot be combined with --database-url.'],
    [['--seed', LEDGER_SEED], '--seed needs --schema'],
  ])('%j', async (args, message) => {
    const run = await local(...args);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain(message);
  });

  it('refuses --schema without --migrations: the demo release cannot run on your schema', async () => {
    const run = await runEmc(['local', '--schema', LEDGER_SCHEMA, '--drain-sessions', 'ledger-v0%'], { runLocalDemo });
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain("emc: --schema needs --migrations: the releases to run on your schema (the demo's migrations change only the demo's table).");
    expect(run.stdout).not.toContain('Starting a throw-away embedded PostgreSQL');
  });

  it('refuses a dump with a psql meta-command it cannot run, naming file and line, before starting a server', async () => {
    const dump = tempFile('dump.sql', `\\restrict 9zz\nCREATE TABLE a (id int);\n\\connect other\nCREATE TABLE b (id int);\n`);
    const run = await runEmc(['local', '--schema', dump, '--migrations', ownMigrations, '--drain-sessions', 'x%'], { runLocalDemo });
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain(`emc: --schema ${dump}:3: the psql meta-command \\connect cannot run here`);
    expect(run.stdout).not.toContain('Starting a throw-away embedded PostgreSQL');
    expect(run.stderr).toContain('Next: Fix the file at the line named and run again; nothing was started or loaded.');
  });

  it('refuses a --schema file that does not exist, saying nothing was started', async () => {
    const run = await runEmc(['local', '--schema', '/no/such/dump.sql', '--migrations', ownMigrations, '--drain-sessions', 'x%'], { runLocalDemo });
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain('emc: --schema /no/such/dump.sql: cannot be read (ENOENT)');
    expect(run.stderr).toContain('Next: Give a file that exists and can be read and run again; nothing was started or loaded.');
  });
});

describe('loading a SQL dump', () => {
  const serverUrl = () => inject('postgresUrl');
  const database = `load_${process.pid}`;
  afterAll(async () => {
    const admin = new pg.Client({ connectionString: serverUrl() });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.end();
  });

  it('names the file and the line of the failing statement and leaves the database recreated empty', async () => {
    const schema = readFileSync(LEDGER_SCHEMA, 'utf8');
    // The error's position points at the statement's second line: the line reported is that one.
    const broken = tempFile('broken.sql', `${schema}\nINSERT INTO public.invoices (customer_id,\n    total) VALUES (1, 2);\n`);
    const line = schema.split('\n').length + 2;
    const files = await readSqlFiles([{ option: '--schema', path: broken }]);
    const error = await loadSqlFiles(serverUrl(), database, files).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SqlFileError);
    expect((error as SqlFileError).message).toBe(`--schema ${broken}:${line}: column "total" of relation "invoices" does not exist (SQLSTATE 42703)`);
    expect((error as SqlFileError).nextAction).toContain('Fix the file at the line named and run again; the throw-away database was recreated empty.');
    const url = new URL(serverUrl());
    url.pathname = `/${database}`;
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    const tables = await client.query(`SELECT count(*)::int AS n FROM pg_class WHERE relnamespace = 'public'::regnamespace`);
    const types = await client.query(`SELECT count(*)::int AS n FROM pg_type WHERE typname = 'invoice_status'`);
    await client.end();
    expect([tables.rows[0].n, types.rows[0].n]).toEqual([0, 0]);
  });

  it('refuses a \\restrict line inside a statement instead of changing its text', async () => {
    const text = `CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$\nSELECT '\n\\restrict abc\n'\n$$;\n`;
    const error = await readSqlFiles([{ option: '--seed', path: tempFile('f.sql', text) }]).catch((e: unknown) => e);
    expect((error as SqlFileError).message).toMatch(/:3: a \\restrict or \\unrestrict line inside the statement starting on line 1/);
  });
});

describe('the version table', () => {
  const entry = (stepId: string, phase: string): HistoryEntry => ({
    runId: 'run',
    stepId,
    phase,
    checksum: 'c',
    startedAt: new Date(0),
    finishedAt: new Date(0),
    durationMs: 1,
    rowsAffected: undefined,
    outcome: 'succeeded',
    error: undefined,
  });

  it('starts from the version the database had before the run, not from an empty one', () => {
    const history = [entry('r2_expand01', 'expand'), entry('r2_migrate01', 'migrate'), entry('r2_contract01', 'contract')];
    expect(versionTable(history, { expand: 'r1_expand02', contract: 'r1_contract01' }).map((r) => [r.stage, r.identifier, r.comment])).toEqual([
      ['E', 'r2_expand01, r1_contract01', 'upgrade begins'],
      ['M', 'r2_expand01, r1_contract01', 'r2_migrate01 occurs'],
      ['C', 'r2_expand01, r2_contract01', 'upgrade completed'],
    ]);
  });
});
