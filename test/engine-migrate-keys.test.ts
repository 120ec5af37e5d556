import { afterEach, describe, expect, it } from 'vitest';
import { expand, KeysetKeyError, loadCatalog, migrate, PgSqlClient, type RunContext } from '../lambdas/core/index.ts';
import { writeMigrations } from './support/catalog-fixtures.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { dumpDatabase } from './support/database-dump.ts';
import { migrateToEnd, startRun } from './support/engine.ts';
import { rejectionOf } from './support/engine-faults.ts';

/**
 * Keyset keys of every type the range query walks, and the keys it refuses. Each walk must change every row exactly
 * once (`times` counts the updates), however the key's values sort or print.
 */

const databases: TestDatabase[] = [];
const clients: PgSqlClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) await client.close();
  for (const db of databases.splice(0)) await db.drop();
});

/** A database with `ddl` run, and a one-release catalog whose expand adds nothing and whose migrate step is `migrateSql`. */
async function keyedDatabase(ddl: string, migrateSql: string) {
  const db = await createTestDatabase();
  databases.push(db);
  await db.pool.query(ddl);
  const catalog = await loadCatalog(
    writeMigrations({
      'r1/expand01_add_marker.sql': 'CREATE TABLE marker (id int);\n',
      'r1/migrate01_touch.sql': migrateSql,
    }),
  );
  return { db, catalog };
}

async function timesPerRow(db: TestDatabase): Promise<Record<string, number>> {
  const result = await db.pool.query<{ label: string; times: number }>(`SELECT label, times FROM t ORDER BY label COLLATE "C"`);
  return Object.fromEntries(result.rows.map((r) => [r.label, r.times]));
}

const touch = (key: string, where: string) =>
  `-- emc:keyset table=t key=${key}\nUPDATE t SET times = times + 1 WHERE ${where} BETWEEN :from_key AND :to_key;\n`;

async function runToEnd(db: TestDatabase, catalog: Awaited<ReturnType<typeof loadCatalog>>, batchSize = 2): Promise<RunContext> {
  const ctx = await startRun(db.client, 'keys-run', { batchSize });
  await expand(ctx, catalog);
  await migrateToEnd(ctx, catalog);
  return ctx;
}

describe('keyset keys the range query walks exactly', () => {
  it('a uuid primary key: every row once (there is no min(uuid))', async () => {
    const { db, catalog } = await keyedDatabase(
      `CREATE TABLE t (id uuid PRIMARY KEY, label text NOT NULL, times int NOT NULL DEFAULT 0);
       INSERT INTO t (id, label) SELECT gen_random_uuid(), 'row-' || g FROM generate_series(1, 25) g;`,
      touch('id', 'id'),
    );
    await runToEnd(db, catalog, 4);
    expect(Object.values(await timesPerRow(db))).toEqual(Array(25).fill(1));
  });

  it('a text key in an ICU collation, with values of any characters: every row once', async () => {
    const labels = ['a', 'B', 'b', 'é', 'E', 'z', "quote'd", 'back\\slash', 'new\nline', 'tab\there', '💾 disk', '"dq"', 'ß', '', ' lead'];
    const { db, catalog } = await keyedDatabase(
      `CREATE TABLE t (code text COLLATE "und-x-icu" PRIMARY KEY, label text NOT NULL, times int NOT NULL DEFAULT 0)`,
      touch('code', 'code'),
    );
    for (const label of labels) await db.pool.query(`INSERT INTO t (code, label) VALUES ($1, $1)`, [label]);
    await runToEnd(db, catalog, 2);
    expect(await timesPerRow(db)).toEqual(Object.fromEntries(labels.map((l) => [l, 1])));
  });

  it('a timestamptz key at full precision, its cursor read back under another DateStyle and TimeZone', async () => {
    // Day and month both 12 or less: a cursor printed as "02/01/2020" under DMY reads as 1 February under MDY.
    const { db, catalog } = await keyedDatabase(
      `CREATE TABLE t (at timestamptz PRIMARY KEY, label text NOT NULL, times int NOT NULL DEFAULT 0);
       INSERT INTO t (at, label)
       SELECT timestamptz '2020-01-01 00:00:00.000001+00' + g * interval '1 day' + g * interval '1 microsecond', 'day-' || lpad(g::text, 2, '0')
       FROM generate_series(0, 40) g;`,
      touch('at', 'at'),
    );
    await db.pool.query(`ALTER DATABASE ${db.name} SET DateStyle = 'SQL, DMY'`);
    await db.pool.query(`ALTER DATABASE ${db.name} SET TimeZone = 'Asia/Kolkata'`);
    const first = new PgSqlClient(db.url);
    clients.push(first);
    const ctx = await startRun(first, 'keys-run', { batchSize: 3, migrateBudgetMs: 1000, batchPauseMs: 400 });
    await expand(ctx, catalog);
    const call = await migrate(ctx, catalog);
    expect(call.finished).toBe(false);

    await db.pool.query(`ALTER DATABASE ${db.name} SET DateStyle = 'SQL, MDY'`);
    await db.pool.query(`ALTER DATABASE ${db.name} SET TimeZone = 'America/Los_Angeles'`);
    const second = new PgSqlClient(db.url);
    clients.push(second);
    await migrateToEnd({ ...ctx, client: second, settings: { ...ctx.settings, batchPauseMs: 0 } }, catalog);
    expect(Object.values(await timesPerRow(db))).toEqual(Array(41).fill(1));
  });

  it('a numeric key with a scale: every row once', async () => {
    const { db, catalog } = await keyedDatabase(
      `CREATE TABLE t (price numeric(12, 4) PRIMARY KEY, label text NOT NULL, times int NOT NULL DEFAULT 0);
       INSERT INTO t (price, label) SELECT g / 7.0, 'n-' || g FROM generate_series(1, 20) g;`,
      touch('price', 'price'),
    );
    await runToEnd(db, catalog, 3);
    expect(Object.values(await timesPerRow(db))).toEqual(Array(20).fill(1));
  });

  it('a composite primary key (uuid, bigint), compared as a row: every row once, the cursor a JSON array', async () => {
    const { db, catalog } = await keyedDatabase(
      `CREATE TABLE t (tenant_id uuid NOT NULL, id bigint NOT NULL, label text NOT NULL, times int NOT NULL DEFAULT 0,
                       PRIMARY KEY (tenant_id, id));
       INSERT INTO t (tenant_id, id, label)
       SELECT tenant, g, tenant || '/' || g
       FROM (SELECT gen_random_uuid() AS tenant FROM generate_series(1, 4)) tenants, generate_series(1, 7) g;`,
      touch('tenant_id,id', '(tenant_id, id)'),
    );
    const ctx = await startRun(db.client, 'keys-run', { batchSize: 3, migrateBudgetMs: 1000, batchPauseMs: 300 });
    await expand(ctx, catalog);
    const first = await migrate(ctx, catalog);
    const cursor: unknown = JSON.parse(first.steps[0]!.cursor!);
    expect(cursor).toEqual([expect.stringMatching(/^[0-9a-f-]{36}$/), expect.stringMatching(/^\d+$/)]);
    await migrateToEnd({ ...ctx, settings: { ...ctx.settings, batchPauseMs: 0 } }, catalog);
    expect(Object.values(await timesPerRow(db))).toEqual(Array(28).fill(1));
  });
});

describe('keyset keys that would lose rows are refused before the first batch, the database unchanged', () => {
  it.each([
    {
      name: 'a UNIQUE but nullable key (rows with a NULL key would never be migrated)',
      ddl: `CREATE TABLE t (code text UNIQUE, label text NOT NULL, times int NOT NULL DEFAULT 0);
            INSERT INTO t (code, label) VALUES ('a', 'a'), (NULL, 'null-1'), (NULL, 'null-2');`,
      key: 'code',
      message: /Step r1_migrate01 cannot walk its keyset \(r1\/migrate01_touch\.sql\): key column "code" in "t" .*may be NULL/,
    },
    {
      name: 'a double precision key (its printed value is inexact)',
      ddl: `CREATE TABLE t (x float8 PRIMARY KEY, label text NOT NULL, times int NOT NULL DEFAULT 0);
            INSERT INTO t (x, label) VALUES (0.1, 'a'), (0.2, 'b');`,
      key: 'x',
      message: /key column "x" in "t" .*has type double precision, which is inexact/,
    },
    {
      name: 'a jsonb key (no exact order to walk)',
      ddl: `CREATE TABLE t (doc jsonb NOT NULL, label text NOT NULL, times int NOT NULL DEFAULT 0);
            CREATE INDEX ON t (doc);`,
      key: 'doc',
      message: /key column "doc" in "t" .*has type jsonb, which a keyset cannot walk/,
    },
    {
      name: 'a key whose index has another collation',
      ddl: `CREATE TABLE t (code text NOT NULL, label text NOT NULL, times int NOT NULL DEFAULT 0);
            CREATE UNIQUE INDEX ON t (code COLLATE "C");`,
      key: 'code',
      message: /need a btree index whose first column is "code" on "t"/,
    },
    {
      name: 'a composite key with a nullable second column',
      ddl: `CREATE TABLE t (a int NOT NULL, b int, label text NOT NULL, times int NOT NULL DEFAULT 0);
            CREATE UNIQUE INDEX ON t (a, b);`,
      key: 'a,b',
      message: /key column "b" in "t" .*may be NULL/,
    },
  ])('$name', async ({ ddl, key, message }) => {
    const { db, catalog } = await keyedDatabase(ddl, touch(key, key.includes(',') ? `(${key})` : key));
    const ctx = await startRun(db.client, 'keys-run');
    await expand(ctx, catalog);
    const before = await dumpDatabase(db.pool, ['t']);

    const error = await rejectionOf(migrate(ctx, catalog));

    expect(error).toBeInstanceOf(KeysetKeyError);
    expect(error.message).toMatch(message);
    expect(await dumpDatabase(db.pool, ['t'])).toEqual(before);
  });
});
