import { afterEach, describe, expect, it } from 'vitest';
import { expand, KeysetKeyError, loadCatalog, migrate, PgSqlClient, StepFailedError } from '../lambdas/core/index.ts';
import { writeMigrations } from './support/catalog-fixtures.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { migrateToEnd, startRun } from './support/engine.ts';
import { refusedCatalogs, stepKindCases, type CaseState, type StepKindCase } from './support/step-kind-cases.ts';

/**
 * The keyset migration (`lambdas/core/steps/keyset-migration.ts`): batches are key ranges over an indexed key, each
 * batch committed with its cursor. Every walk must change every row exactly once (`times` counts the updates), however
 * the key's values sort or print; a failed batch keeps the batches before it and leaves the cursor where they left it;
 * a key that would lose rows is refused before the first batch, the database unchanged.
 */

/** A keyset step over `t` that counts its visits, with a fixed batch size (the file's overrides the run's). */
const touch = (key: string, where: string, batchSize: number) =>
  `-- emc:keyset table=t key=${key}\n-- emc:batch-size ${batchSize}\nUPDATE t SET times = times + 1 WHERE ${where} BETWEEN :from_key AND :to_key;\n`;

const MARKER = { 'r1/expand01_add_marker.sql': 'CREATE TABLE marker (id int);\n' };

async function timesPerRow(t: CaseState): Promise<Record<string, number>> {
  const rows = await t.rows<{ label: string; times: number }>(`SELECT label, times FROM t ORDER BY label COLLATE "C"`);
  return Object.fromEntries(rows.map((r) => [r.label, r.times]));
}

const everyRowOnce = (rows: number) => async (t: CaseState) => {
  expect(Object.values(await timesPerRow(t))).toEqual(Array(rows).fill(1));
};

const sqlText = (value: string) => `'${value.replaceAll("'", "''")}'`;
const ICU_LABELS = ['a', 'B', 'b', 'é', 'E', 'z', "quote'd", 'back\\slash', 'new\nline', 'tab\there', '💾 disk', '"dq"', 'ß', '', ' lead'];

/** A key the range query cannot walk without losing rows: refused before the first batch, nothing written. */
const refusedKey = (name: string, setup: string, key: string, message: RegExp): StepKindCase => ({
  name,
  setup,
  files: { ...MARKER, 'r1/migrate01_touch.sql': touch(key, key.includes(',') ? `(${key})` : key, 2) },
  fails: {
    phase: 'migrate',
    error(error) {
      expect(error).toBeInstanceOf(KeysetKeyError);
      expect(error.message).toMatch(message);
    },
    async afterFailure(t) {
      expect(await t.dump()).toEqual(t.before);
    },
  },
});

const NUMS = `CREATE TABLE nums (id bigint PRIMARY KEY, v int NOT NULL, times int NOT NULL DEFAULT 0);
              INSERT INTO nums (id, v) SELECT g, g + 1000 FROM generate_series(1, 250) g;`;

describe('a keyset migration', () => {
  stepKindCases('keyset', [
    {
      name: 'fills a new column in key ranges of the batch size, every row once; contract makes it NOT NULL',
      setup: NUMS,
      files: {
        'r1/expand01_add_doubled.sql': 'ALTER TABLE nums ADD COLUMN doubled int;\n',
        'r1/migrate01_double.sql':
          '-- emc:keyset table=nums key=id\n' +
          '-- emc:batch-size 100\n' +
          '-- emc:pending SELECT count(*) FROM nums WHERE doubled IS NULL\n' +
          'UPDATE nums SET doubled = v * 2, times = times + 1 WHERE id BETWEEN :from_key AND :to_key;\n',
        'r1/contract01_doubled_not_null.sql': 'ALTER TABLE nums ALTER COLUMN doubled SET NOT NULL;\n',
      },
      async afterExpand(t) {
        expect(await t.rows(`SELECT count(*)::int AS n FROM nums WHERE doubled IS NULL`)).toEqual([{ n: 250 }]);
        expect(await t.progress('r1_migrate01')).toBeUndefined();
      },
      async afterMigrate(t) {
        expect(await t.rows(`SELECT count(*)::int AS n FROM nums WHERE doubled = v * 2 AND times = 1`)).toEqual([{ n: 250 }]);
        expect(t.events.flatMap((e) => (e.type === 'batch' ? [[e.rows, e.cursor]] : []))).toEqual([
          [100, '100'],
          [100, '200'],
          [50, '250'],
        ]);
        expect(await t.progress('r1_migrate01')).toEqual({ cursor: '250', rows_done: 250, batches: 3, finished: true, pass: 1 });
        expect(await t.version()).toBe('r1_expand01');
      },
      async afterContract(t) {
        await expect(t.db.pool.query(`INSERT INTO nums (id, v) VALUES (251, 1)`)).rejects.toThrow(/null value in column "doubled"/);
        expect(await t.version()).toBe('r1_expand01, r1_contract01');
      },
    },
    {
      name: 'a uuid primary key: every row once (there is no min(uuid))',
      setup: `CREATE TABLE t (id uuid PRIMARY KEY, label text NOT NULL, times int NOT NULL DEFAULT 0);
              INSERT INTO t (id, label) SELECT gen_random_uuid(), 'row-' || g FROM generate_series(1, 25) g;`,
      files: { ...MARKER, 'r1/migrate01_touch.sql': touch('id', 'id', 4) },
      afterMigrate: everyRowOnce(25),
    },
    {
      name: 'a text key in an ICU collation, with values of any characters: every row once',
      setup: `CREATE TABLE t (code text COLLATE "und-x-icu" PRIMARY KEY, label text NOT NULL, times int NOT NULL DEFAULT 0);
              INSERT INTO t (code, label) VALUES ${ICU_LABELS.map((l) => `(${sqlText(l)}, ${sqlText(l)})`).join(', ')};`,
      files: { ...MARKER, 'r1/migrate01_touch.sql': touch('code', 'code', 2) },
      async afterMigrate(t) {
        expect(await timesPerRow(t)).toEqual(Object.fromEntries(ICU_LABELS.map((l) => [l, 1])));
      },
    },
    {
      name: 'a numeric key with a scale: every row once',
      setup: `CREATE TABLE t (price numeric(12, 4) PRIMARY KEY, label text NOT NULL, times int NOT NULL DEFAULT 0);
              INSERT INTO t (price, label) SELECT g / 7.0, 'n-' || g FROM generate_series(1, 20) g;`,
      files: { ...MARKER, 'r1/migrate01_touch.sql': touch('price', 'price', 3) },
      afterMigrate: everyRowOnce(20),
    },
    {
      name: 'a composite primary key (uuid, bigint), compared as a row: every row once, the cursor a JSON array',
      setup: `CREATE TABLE t (tenant_id uuid NOT NULL, id bigint NOT NULL, label text NOT NULL, times int NOT NULL DEFAULT 0,
                              PRIMARY KEY (tenant_id, id));
              INSERT INTO t (tenant_id, id, label)
              SELECT tenant, g, tenant || '/' || g
              FROM (SELECT gen_random_uuid() AS tenant FROM generate_series(1, 4)) tenants, generate_series(1, 7) g;`,
      files: { ...MARKER, 'r1/migrate01_touch.sql': touch('tenant_id,id', '(tenant_id, id)', 3) },
      async afterMigrate(t) {
        await everyRowOnce(28)(t);
        const [last] = await t.rows<{ tenant_id: string; id: string }>(`SELECT tenant_id, id FROM t ORDER BY tenant_id DESC, id DESC LIMIT 1`);
        expect(JSON.parse(String((await t.progress('r1_migrate01'))!.cursor))).toEqual([last!.tenant_id, last!.id]);
      },
    },
    {
      name: 'a directive naming the table and key in capitals: folded to lower case as PostgreSQL folds them, and walked',
      setup: `CREATE TABLE t (id int PRIMARY KEY, label text NOT NULL, times int NOT NULL DEFAULT 0);
              INSERT INTO t (id, label) SELECT g, 'r' || g FROM generate_series(1, 9) g;`,
      files: {
        ...MARKER,
        'r1/migrate01_touch.sql': '-- emc:keyset table=Public.T key=ID\n-- emc:batch-size 4\nUPDATE t SET times = times + 1 WHERE id BETWEEN :from_key AND :to_key;\n',
      },
      async afterMigrate(t) {
        expect(t.catalog.steps[1]).toMatchObject({ kind: 'keyset', table: { schema: 'public', name: 't' }, keys: ['id'], batchSize: 4 });
        await everyRowOnce(9)(t);
      },
    },
    {
      name: 'a failing batch keeps the batches before it and their cursor; the re-run resumes there, every row once',
      setup: `${NUMS} UPDATE nums SET v = 0 WHERE id = 150;`,
      files: {
        'r1/expand01_add_ratio.sql': 'ALTER TABLE nums ADD COLUMN ratio int;\n',
        'r1/migrate01_ratio.sql':
          '-- emc:keyset table=nums key=id\n' +
          '-- emc:batch-size 50\n' +
          '-- No "ratio IS NULL" guard on purpose: a batch run twice would count its rows twice.\n' +
          'UPDATE nums SET ratio = 1000000 / v, times = times + 1 WHERE id BETWEEN :from_key AND :to_key;\n',
      },
      fails: {
        phase: 'migrate',
        error(error) {
          expect(error).toBeInstanceOf(StepFailedError);
          expect(error).toMatchObject({ stepId: 'r1_migrate01', sqlState: '22012' });
          expect(error.message).toContain('r1/migrate01_ratio.sql, statement at line 4');
        },
        async afterFailure(t) {
          expect(await t.progress('r1_migrate01')).toEqual({ cursor: '100', rows_done: 100, batches: 2, finished: false, pass: 1 });
          expect(await t.rows(`SELECT min(id)::int AS first, max(id)::int AS last, count(*)::int AS n FROM nums WHERE times = 1`)).toEqual([
            { first: 1, last: 100, n: 100 },
          ]);
          expect(await t.rows(`SELECT count(*)::int AS n FROM nums WHERE times = 0 AND ratio IS NULL`)).toEqual([{ n: 150 }]);
          expect((await t.history()).at(-1)).toEqual(['r1_migrate01', 'failed']);
          expect(await t.version()).toBe('r1_expand01');
        },
        repair: { sql: `UPDATE nums SET v = 1 WHERE id = 150` },
      },
      async afterMigrate(t) {
        expect(await t.rows(`SELECT count(*)::int AS n FROM nums WHERE times = 1 AND ratio = 1000000 / v`)).toEqual([{ n: 250 }]);
        expect(await t.progress('r1_migrate01')).toMatchObject({ cursor: '250', rows_done: 250, finished: true });
      },
    },
    refusedKey(
      'a UNIQUE but nullable key (rows with a NULL key would never be migrated)',
      `CREATE TABLE t (code text UNIQUE, label text NOT NULL, times int NOT NULL DEFAULT 0);
       INSERT INTO t (code, label) VALUES ('a', 'a'), (NULL, 'null-1'), (NULL, 'null-2');`,
      'code',
      /Step r1_migrate01 cannot walk its keyset \(r1\/migrate01_touch\.sql\): key column "code" in "t" .*may be NULL/,
    ),
    refusedKey(
      'a double precision key (its printed value is inexact)',
      `CREATE TABLE t (x float8 PRIMARY KEY, label text NOT NULL, times int NOT NULL DEFAULT 0);
       INSERT INTO t (x, label) VALUES (0.1, 'a'), (0.2, 'b');`,
      'x',
      /key column "x" in "t" .*has type double precision, which is inexact/,
    ),
    refusedKey(
      'a jsonb key (no exact order to walk)',
      `CREATE TABLE t (doc jsonb NOT NULL, label text NOT NULL, times int NOT NULL DEFAULT 0);
       CREATE INDEX ON t (doc);`,
      'doc',
      /key column "doc" in "t" .*has type jsonb, which a keyset cannot walk/,
    ),
    refusedKey(
      'a key whose index has another collation',
      `CREATE TABLE t (code text NOT NULL, label text NOT NULL, times int NOT NULL DEFAULT 0);
       CREATE UNIQUE INDEX ON t (code COLLATE "C");`,
      'code',
      /need a btree index whose first column is "code" on "t"/,
    ),
    refusedKey(
      'a composite key with a nullable second column',
      `CREATE TABLE t (a int NOT NULL, b int, label text NOT NULL, times int NOT NULL DEFAULT 0);
       CREATE UNIQUE INDEX ON t (a, b);`,
      'a,b',
      /key column "b" in "t" .*may be NULL/,
    ),
  ]);

  refusedCatalogs([
    {
      name: 'keyset statement missing :to_key',
      files: { 'a/migrate01_m.sql': '-- emc:keyset table=t key=id\nUPDATE t SET c = 1 WHERE id >= :from_key;\n' },
      problems: [{ file: 'a/migrate01_m.sql', message: /^a keyset statement must use :from_key and :to_key; missing :to_key$/, line: 2 }],
    },
    {
      name: 'keyset directive without a key',
      files: { 'a/migrate01_m.sql': '-- emc:keyset table=t\nUPDATE t SET c = 1 WHERE id BETWEEN :from_key AND :to_key;\n' },
      problems: [{ file: 'a/migrate01_m.sql', message: '"emc:keyset" needs table=<[schema.]table> and key=<column>', line: 1 }],
    },
    {
      name: 'keyset directive with a field it does not take',
      files: { 'a/migrate01_m.sql': '-- emc:keyset table=t key=id order=desc\nUPDATE t SET c = 1 WHERE id BETWEEN :from_key AND :to_key;\n' },
      problems: [{ file: 'a/migrate01_m.sql', message: '"emc:keyset" takes "table=<[schema.]table> key=<column>[,<column>...]", found "table=t key=id order=desc"', line: 1 }],
    },
    {
      name: 'keyset directive naming a key column twice, in two cases',
      files: { 'a/migrate01_m.sql': '-- emc:keyset table=t key=id,ID\nUPDATE t SET c = 1 WHERE (id, id) BETWEEN :from_key AND :to_key;\n' },
      problems: [{ file: 'a/migrate01_m.sql', message: '"emc:keyset" names a key column twice, found "table=t key=id,ID"', line: 1 }],
    },
  ]);
});

describe('a keyset cursor', () => {
  const clients: PgSqlClient[] = [];
  let db: TestDatabase | undefined;
  afterEach(async () => {
    for (const client of clients.splice(0)) await client.close();
    await db?.drop();
  });

  it('of a timestamptz key at full precision is read back exactly under another DateStyle and TimeZone', async () => {
    db = await createTestDatabase();
    // Day and month both 12 or less: a cursor printed as "02/01/2020" under DMY reads as 1 February under MDY.
    await db.pool.query(
      `CREATE TABLE t (at timestamptz PRIMARY KEY, label text NOT NULL, times int NOT NULL DEFAULT 0);
       INSERT INTO t (at, label)
       SELECT timestamptz '2020-01-01 00:00:00.000001+00' + g * interval '1 day' + g * interval '1 microsecond', 'day-' || lpad(g::text, 2, '0')
       FROM generate_series(0, 40) g;`,
    );
    const catalog = await loadCatalog(writeMigrations({ ...MARKER, 'r1/migrate01_touch.sql': touch('at', 'at', 3) }));
    await db.pool.query(`ALTER DATABASE ${db.name} SET DateStyle = 'SQL, DMY'`);
    await db.pool.query(`ALTER DATABASE ${db.name} SET TimeZone = 'Asia/Kolkata'`);
    const first = new PgSqlClient(db.url);
    clients.push(first);
    const ctx = await startRun(first, 'keys-run', { migrateBudgetMs: 1000, batchPauseMs: 400 });
    await expand(ctx, catalog);
    const call = await migrate(ctx, catalog);
    expect(call.finished).toBe(false);

    await db.pool.query(`ALTER DATABASE ${db.name} SET DateStyle = 'SQL, MDY'`);
    await db.pool.query(`ALTER DATABASE ${db.name} SET TimeZone = 'America/Los_Angeles'`);
    const second = new PgSqlClient(db.url);
    clients.push(second);
    await migrateToEnd({ ...ctx, client: second, settings: { ...ctx.settings, batchPauseMs: 0 } }, catalog);
    const times = await db.pool.query<{ times: number }>(`SELECT times FROM t`);
    expect(times.rows.map((r) => r.times)).toEqual(Array(41).fill(1));
  });
});
