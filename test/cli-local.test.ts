import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeConnectionString, HIDDEN_CONNECTION_STRING } from '../bin/cli/connection-string.ts';
import { runLocalDemo, type LocalDemoResult } from '../bin/local/local-demo.ts';
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
