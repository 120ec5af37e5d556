import { describe, expect } from 'vitest';
import { LockTimeoutError, StepFailedError, TransactionConflictError } from '../lambdas/core/index.ts';
import { refusedCatalogs, stepKindCases, type StepKindCase } from './support/step-kind-cases.ts';

/**
 * The transactional schema step (`lambdas/core/steps/transactional-schema-step.ts`): an expand or contract step whose
 * statements, version update and history row commit in one transaction. A failure leaves nothing of the step behind.
 */

const USERS = `CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);
               INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 30) g;`;

const RENAME_NAME = {
  'r1/expand01_add_display_name.sql':
    '-- The old release writes only name: a trigger keeps display_name in step.\n' +
    'ALTER TABLE users ADD COLUMN display_name text;\n' +
    'CREATE FUNCTION users_sync_display_name() RETURNS trigger LANGUAGE plpgsql AS $$\n' +
    'BEGIN NEW.display_name := coalesce(NEW.display_name, NEW.name); RETURN NEW; END $$;\n' +
    'CREATE TRIGGER users_sync_display_name BEFORE INSERT OR UPDATE ON users FOR EACH ROW EXECUTE FUNCTION users_sync_display_name();\n',
  'r1/migrate01_fill_display_name.sql':
    '-- emc:keyset table=users key=id\n' +
    '-- emc:pending SELECT count(*) FROM users WHERE display_name IS NULL\n' +
    'UPDATE users SET display_name = name WHERE id BETWEEN :from_key AND :to_key AND display_name IS NULL;\n',
  'r1/contract01_drop_name.sql':
    'DROP TRIGGER users_sync_display_name ON users;\n' +
    'DROP FUNCTION users_sync_display_name();\n' +
    'ALTER TABLE users ALTER COLUMN display_name SET NOT NULL;\n' +
    'ALTER TABLE users DROP COLUMN name;\n',
};

const BROKEN_EXPAND02 = {
  'r1/expand01_create_widgets.sql': 'CREATE TABLE widgets (id bigint PRIMARY KEY, name text NOT NULL);\n',
  'r1/expand02_add_columns.sql':
    '-- Two columns; the second references a table that does not exist.\n' +
    'ALTER TABLE widgets ADD COLUMN color text;\n' +
    '\n' +
    'ALTER TABLE widgets ADD COLUMN maker_id bigint REFERENCES makers (id);\n',
};

const conflict = (sqlState: string): StepKindCase => ({
  name: `a transaction the database rolled back (SQLSTATE ${sqlState}) is a transient TransactionConflictError, nothing applied`,
  files: {
    'r1/expand01_widgets.sql': 'CREATE TABLE widgets (id bigint PRIMARY KEY);\n',
    'r1/expand02_conflict.sql':
      '-- emc:allow-destructive the DO block only raises the conflict under test\n' +
      'ALTER TABLE widgets ADD COLUMN color text;\n' +
      `DO $$ BEGIN RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '${sqlState}'; END $$;\n`,
  },
  fails: {
    phase: 'expand',
    error(error) {
      expect(error).toBeInstanceOf(TransactionConflictError);
      expect(error).toMatchObject({ transient: true, sqlState });
      expect(error.message).toContain('r1_expand02');
    },
    async afterFailure(t) {
      expect(await t.columns('widgets')).toEqual(['id']);
      expect(await t.version()).toBe('r1_expand01');
    },
  },
});

describe('a transactional schema step', () => {
  stepKindCases('transactional', [
    {
      name: 'expand adds a column and its trigger together, contract drops the old column: each step one version',
      setup: USERS,
      files: RENAME_NAME,
      async afterExpand(t) {
        expect(await t.columns('users')).toEqual(['id', 'name', 'display_name']);
        expect(await t.version()).toBe('r1_expand01');
        // The old release's writes, knowing nothing of display_name, get it from the trigger.
        await t.db.pool.query(`INSERT INTO users (id, name) VALUES (31, 'late')`);
        expect(await t.rows(`SELECT display_name FROM users WHERE id = 31`)).toEqual([{ display_name: 'late' }]);
      },
      async afterMigrate(t) {
        expect(await t.rows(`SELECT count(*)::int AS n FROM users WHERE display_name IS DISTINCT FROM name`)).toEqual([{ n: 0 }]);
      },
      async afterContract(t) {
        expect(await t.columns('users')).toEqual(['id', 'display_name']);
        expect(await t.rows(`SELECT tgname FROM pg_trigger WHERE tgrelid = 'users'::regclass AND NOT tgisinternal`)).toEqual([]);
        await expect(t.db.pool.query(`INSERT INTO users (id) VALUES (32)`)).rejects.toThrow(/null value in column "display_name"/);
        expect(await t.version()).toBe('r1_expand01, r1_contract01');
        expect(await t.history()).toEqual([
          ['r1_expand01', 'succeeded'],
          ['r1_migrate01', 'succeeded'],
          ['r1_contract01', 'succeeded'],
        ]);
      },
    },
    {
      name: 'fails as a whole: a failing 2nd statement rolls back the 1st, the version stays; the fixed file resumes there',
      files: BROKEN_EXPAND02,
      fails: {
        phase: 'expand',
        error(error) {
          expect(error).toBeInstanceOf(StepFailedError);
          const failed = error as StepFailedError;
          expect(failed).toMatchObject({ stepId: 'r1_expand02', sqlState: '42P01', transient: false });
          expect(failed.message).toContain('r1/expand02_add_columns.sql, statement at line 4');
          expect(failed.message).toContain('makers');
          expect(failed.statement).toContain('REFERENCES makers');
          expect(failed.nextAction).toContain('rolled back');
        },
        async afterFailure(t) {
          // expand01 committed on its own; expand02 left nothing behind but its failed history row.
          expect(await t.columns('widgets')).toEqual(['id', 'name']);
          expect(await t.version()).toBe('r1_expand01');
          expect(await t.rows(`SELECT step_id FROM emc.applied_step ORDER BY step_id`)).toEqual([{ step_id: 'r1_expand01' }]);
          expect(await t.history()).toEqual([
            ['r1_expand01', 'succeeded'],
            ['r1_expand02', 'failed'],
          ]);
        },
        // The fixed file was never applied, so changing it is no drift.
        repair: {
          files: {
            ...BROKEN_EXPAND02,
            'r1/expand02_add_columns.sql': '-- Two columns.\nALTER TABLE widgets ADD COLUMN color text;\n\nALTER TABLE widgets ADD COLUMN maker_id bigint;\n',
          },
        },
      },
      async afterExpand(t) {
        expect(await t.columns('widgets')).toEqual(['id', 'name', 'color', 'maker_id']);
        expect(await t.version()).toBe('r1_expand02');
        expect((await t.history()).map(([, outcome]) => outcome)).toEqual(['succeeded', 'failed', 'succeeded']);
      },
    },
    conflict('40001'),
    conflict('40P01'),
    {
      name: 'waits at most lock_timeout behind an application transaction: LockTimeoutError, nothing applied, then retried',
      setup: `CREATE TABLE widgets (id bigint PRIMARY KEY, name text NOT NULL); INSERT INTO widgets VALUES (1, 'one');`,
      files: { 'r1/expand01_add_color.sql': 'ALTER TABLE widgets ADD COLUMN color text;\n' },
      settings: { lockTimeoutMs: 300 },
      fails: {
        phase: 'expand',
        async holding(db) {
          const app = await db.pool.connect();
          await app.query('BEGIN');
          await app.query('SELECT * FROM widgets'); // holds ACCESS SHARE until the transaction ends
          return async () => {
            // The application's transaction was not disturbed.
            await app.query('SELECT count(*) FROM widgets');
            await app.query('COMMIT');
            app.release();
          };
        },
        error(error) {
          expect(error).toBeInstanceOf(LockTimeoutError);
          expect(error).toMatchObject({ stepId: 'r1_expand01', transient: true });
          expect(error.message).toContain('r1/expand01_add_color.sql');
        },
        async afterFailure(t) {
          expect(await t.columns('widgets')).toEqual(['id', 'name']);
          expect(await t.version()).toBe('(none)');
        },
        // The transaction ended: the retry gets its lock.
        repair: {},
      },
      async afterExpand(t) {
        expect(await t.columns('widgets')).toEqual(['id', 'name', 'color']);
        expect(await t.version()).toBe('r1_expand01');
      },
    },
    {
      name: 'a contract step that fails keeps every column the old release reads; after the repair it drops them',
      setup: `CREATE TABLE t (id int PRIMARY KEY, legacy text, c int);
              INSERT INTO t VALUES (1, 'a', 1), (2, 'b', NULL);`,
      files: { 'r1/contract01_drop_legacy.sql': 'ALTER TABLE t DROP COLUMN legacy;\nALTER TABLE t ALTER COLUMN c SET NOT NULL;\n' },
      fails: {
        phase: 'contract',
        error(error) {
          expect(error).toBeInstanceOf(StepFailedError);
          expect(error).toMatchObject({ stepId: 'r1_contract01', sqlState: '23502' });
          expect(error.message).toContain('r1/contract01_drop_legacy.sql, statement at line 2');
        },
        async afterFailure(t) {
          const now = await t.dump();
          expect(now.schema).toEqual(t.before!.schema);
          expect(now.rows).toEqual(t.before!.rows);
          expect(await t.version()).toBe('(none)');
        },
        repair: { sql: `UPDATE t SET c = 0 WHERE c IS NULL` },
      },
      async afterContract(t) {
        expect(await t.columns('t')).toEqual(['id', 'c']);
        expect(await t.version()).toBe('r1_contract01');
      },
    },
  ]);

  refusedCatalogs([
    {
      name: 'CREATE INDEX CONCURRENTLY without no-transaction',
      files: { 'a/expand01_x.sql': 'ALTER TABLE t ADD COLUMN c int;\nCREATE INDEX CONCURRENTLY t_c_idx ON t (c);\n' },
      problems: [
        { file: 'a/expand01_x.sql', message: 'IndexStmt cannot run inside a transaction; put it in its own step marked "-- emc:no-transaction"', line: 2 },
      ],
    },
    {
      name: 'DROP INDEX CONCURRENTLY in a transactional contract step',
      files: { 'a/expand01_x.sql': 'ALTER TABLE t ADD COLUMN c int;\n', 'a/contract01_x.sql': 'DROP INDEX CONCURRENTLY t_c_idx;\n' },
      problems: [{ file: 'a/contract01_x.sql', message: 'DropStmt cannot run inside a transaction', line: 1 }],
    },
    {
      name: 'VACUUM in an expand step',
      files: { 'a/expand01_x.sql': 'ALTER TABLE t ADD COLUMN c int;\n\nVACUUM ANALYZE t;\n' },
      problems: [{ file: 'a/expand01_x.sql', message: 'VacuumStmt cannot run inside a transaction', line: 3 }],
    },
  ]);
});
