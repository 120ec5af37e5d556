import type pg from 'pg';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplicationWriter, ledgerMismatches, type Queryable, type ReleaseWorkload, type WriterReport } from '../bin/local/application-writer.ts';
import { runLocalExecution } from '../bin/local/run-local-execution.ts';
import { loadCatalog } from '../lambdas/core/catalog/load-catalog.ts';
import { formatVersion } from '../lambdas/core/state/composite-version.ts';
import { readState } from '../lambdas/core/state/database-state.ts';
import { CONTROL_STATE_NAMES, STATE_NAMES } from '../lambdas/core/workflow/state-names.ts';
import { DrainSource } from '../lib/drain-source.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

/**
 * Every recipe of docs/cookbook.md, end to end on the real PostgreSQL through the synthesized state machine (the
 * deployed bundles over the Data API emulator, the drain gate watching the old release's sessions): the old release
 * writes from before expand until the drain, the new release from migrate until after contract, each through its
 * own columns. Each
 * writer owns its rows (the seeded rows by id parity, and the rows it inserts), so the last value it wrote to a row
 * is the value the row must end with, read through the final schema. Not one write may fail.
 */

const COOKBOOK = join(dirname(fileURLToPath(import.meta.url)), '../docs/cookbook');
const SEEDED = 3_000;
/** Small fixed batches with a pause: migrate takes many batches, so the writers run beside it. */
const SETTINGS = { batchSize: 250, targetBatchMs: 0, batchPauseMs: 20 } as const;

/** A row as it must read through the final schema: one text value per recipe (its `read` query's `value`). */
interface RecipeRow {
  readonly value: string;
}
type Ledger = Map<number, RecipeRow>;

interface Recipe {
  readonly name: string;
  /** Seeds `SEEDED` rows in the old schema; returns their ids with the value each must end with. */
  seed(pool: pg.Pool): Promise<Ledger>;
  /** What the old and the new release write, each in its own schema. */
  readonly oldRelease: ReleaseWorkload<RecipeRow>;
  readonly newRelease: ReleaseWorkload<RecipeRow>;
  /** Every row's final value, read through the final schema, by id. */
  read(pool: pg.Pool): Promise<Ledger>;
  /** What the final schema must enforce, checked after contract. */
  checkSchema(pool: pg.Pool): Promise<void>;
}

/** A release's writes from an insert (answers the new id and its value) and an update (answers the row's new value). */
function writes(
  insert: (pool: Queryable, n: number) => Promise<[string, string]>,
  update: (pool: Queryable, id: number, n: number) => Promise<string>,
): ReleaseWorkload<RecipeRow> {
  return {
    async insert(pool, n) {
      const [id, value] = await insert(pool, n);
      return { id: Number(id), row: { value } };
    },
    async update(pool, id, n) {
      return { value: await update(pool, id, n) };
    },
  };
}

const one = async (pool: Queryable, sql: string, params: unknown[]): Promise<string> =>
  String((await pool.query<{ id: string }>(sql, params)).rows[0]!.id);

async function seedRows(pool: pg.Pool, sql: string, value: (id: string) => string): Promise<Ledger> {
  const { rows } = await pool.query<{ id: string }>(sql, [SEEDED]);
  return new Map(rows.map((r) => [Number(r.id), { value: value(String(r.id)) }]));
}

async function readRows(pool: pg.Pool, sql: string): Promise<Ledger> {
  const { rows } = await pool.query<{ id: string; value: string }>(sql);
  return new Map(rows.map((r) => [Number(r.id), { value: r.value }]));
}

async function notNull(pool: pg.Pool, table: string, column: string): Promise<void> {
  const { rows } = await pool.query<{ attnotnull: boolean }>(
    `SELECT attnotnull FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2`,
    [table, column],
  );
  expect(rows, `${table}.${column}`).toEqual([{ attnotnull: true }]);
}

async function columns(pool: pg.Pool, table: string): Promise<string[]> {
  const { rows } = await pool.query<{ column_name: string }>(
    `SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`,
    [table],
  );
  return rows.map((r) => r.column_name);
}

const cents = (n: number) => String(100 + ((n * 37) % 100_000));
const priceText = (c: string) => `${Math.floor(Number(c) / 100)}.${String(Number(c) % 100).padStart(2, '0')}`;

const RECIPES: readonly Recipe[] = [
  {
    name: 'add-not-null-column',
    seed: (pool) =>
      seedRows(pool, `INSERT INTO accounts (email) SELECT 'User' || g || '@Example.COM' FROM generate_series(1, $1) g RETURNING id`, (id) =>
        `User${id}@Example.COM`,
      ),
    oldRelease: writes(
      async (pool, n) => {
        const email = `Old${n}@Example.com`;
        return [await one(pool, `INSERT INTO accounts (email) VALUES ($1) RETURNING id`, [email]), email];
      },
      async (pool, id, n) => {
        const email = `Old${n}.Update@Example.com`;
        await pool.query(`UPDATE accounts SET email = $2 WHERE id = $1`, [id, email]);
        return email;
      },
    ),
    newRelease: writes(
      async (pool, n) => {
        const email = `New${n}@Example.com`;
        return [await one(pool, `INSERT INTO accounts (email, email_normalized) VALUES ($1, lower($1)) RETURNING id`, [email]), email];
      },
      async (pool, id, n) => {
        const email = `New${n}.Update@Example.com`;
        await pool.query(`UPDATE accounts SET email = $2, email_normalized = lower($2) WHERE id = $1`, [id, email]);
        return email;
      },
    ),
    async read(pool) {
      const wrong = await pool.query(`SELECT id FROM accounts WHERE email_normalized IS DISTINCT FROM lower(email)`);
      expect(wrong.rows, 'rows whose email_normalized is not lower(email)').toEqual([]);
      return readRows(pool, `SELECT id, email AS value FROM accounts`);
    },
    checkSchema: (pool) => notNull(pool, 'accounts', 'email_normalized'),
  },
  {
    name: 'rename-column',
    seed: (pool) => seedRows(pool, `INSERT INTO customers (fullname) SELECT 'Customer ' || g FROM generate_series(1, $1) g RETURNING id`, (id) => `Customer ${id}`),
    oldRelease: writes(
      async (pool, n) => [await one(pool, `INSERT INTO customers (fullname) VALUES ($1) RETURNING id`, [`Old ${n}`]), `Old ${n}`],
      async (pool, id, n) => {
        await pool.query(`UPDATE customers SET fullname = $2 WHERE id = $1`, [id, `Old renamed ${n}`]);
        return `Old renamed ${n}`;
      },
    ),
    newRelease: writes(
      async (pool, n) => [await one(pool, `INSERT INTO customers (display_name) VALUES ($1) RETURNING id`, [`New ${n}`]), `New ${n}`],
      async (pool, id, n) => {
        await pool.query(`UPDATE customers SET display_name = $2 WHERE id = $1`, [id, `New renamed ${n}`]);
        return `New renamed ${n}`;
      },
    ),
    read: (pool) => readRows(pool, `SELECT id, display_name AS value FROM customers`),
    async checkSchema(pool) {
      await notNull(pool, 'customers', 'display_name');
      expect(await columns(pool, 'customers')).toEqual(['id', 'display_name']);
    },
  },
  {
    name: 'change-column-type',
    seed: (pool) =>
      seedRows(pool, `INSERT INTO products (price) SELECT (g * 3) || '.25' FROM generate_series(1, $1) g RETURNING id`, (id) => {
        // Seeded ids run 1..SEEDED in insert order, so the price follows from the id.
        return String(Number(id) * 300 + 25);
      }),
    oldRelease: writes(
      async (pool, n) => [await one(pool, `INSERT INTO products (price) VALUES ($1) RETURNING id`, [priceText(cents(n))]), cents(n)],
      async (pool, id, n) => {
        await pool.query(`UPDATE products SET price = $2 WHERE id = $1`, [id, priceText(cents(n))]);
        return cents(n);
      },
    ),
    newRelease: writes(
      async (pool, n) => [await one(pool, `INSERT INTO products (price_cents) VALUES ($1) RETURNING id`, [cents(n)]), cents(n)],
      async (pool, id, n) => {
        await pool.query(`UPDATE products SET price_cents = $2 WHERE id = $1`, [id, cents(n)]);
        return cents(n);
      },
    ),
    read: (pool) => readRows(pool, `SELECT id, price_cents::text AS value FROM products`),
    async checkSchema(pool) {
      await notNull(pool, 'products', 'price_cents');
      expect(await columns(pool, 'products')).toEqual(['id', 'price_cents']);
    },
  },
  {
    name: 'add-constraints-online',
    async seed(pool) {
      await pool.query(`INSERT INTO customers (name) SELECT 'Customer ' || g FROM generate_series(1, 100) g`);
      return seedRows(
        pool,
        `INSERT INTO orders (customer_id, reference) SELECT 1 + g % 100, 'seed-' || g FROM generate_series(1, $1) g RETURNING id`,
        (id) => `${1 + (Number(id) % 100)}:seed-${id}`,
      );
    },
    oldRelease: writes(
      async (pool, n) => {
        const customer = 1 + (n % 100);
        return [await one(pool, `INSERT INTO orders (customer_id, reference) VALUES ($1, $2) RETURNING id`, [customer, `old-${n}`]), `${customer}:old-${n}`];
      },
      async (pool, id, n) => {
        const customer = 1 + ((n * 3) % 100);
        const reference = `old-update-${n}`;
        await pool.query(`UPDATE orders SET customer_id = $2, reference = $3 WHERE id = $1`, [id, customer, reference]);
        return `${customer}:${reference}`;
      },
    ),
    newRelease: writes(
      async (pool, n) => {
        const customer = 1 + ((n * 11) % 100);
        return [await one(pool, `INSERT INTO orders (customer_id, reference) VALUES ($1, $2) RETURNING id`, [customer, `new-${n}`]), `${customer}:new-${n}`];
      },
      async (pool, id, n) => {
        const customer = 1 + ((n * 13) % 100);
        const reference = `new-update-${n}`;
        await pool.query(`UPDATE orders SET customer_id = $2, reference = $3 WHERE id = $1`, [id, customer, reference]);
        return `${customer}:${reference}`;
      },
    ),
    read: (pool) => readRows(pool, `SELECT id, customer_id || ':' || reference AS value FROM orders`),
    async checkSchema(pool) {
      const { rows } = await pool.query(
        `SELECT conname, contype, convalidated FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype IN ('f', 'u') ORDER BY conname`,
      );
      expect(rows).toEqual([
        { conname: 'orders_customer_fk', contype: 'f', convalidated: true },
        { conname: 'orders_reference_key', contype: 'u', convalidated: true },
      ]);
      await expect(pool.query(`INSERT INTO orders (customer_id, reference) VALUES (100000, 'orphan')`)).rejects.toMatchObject({ code: '23503' });
      // A reference some order holds now (the writers rewrite references as they go).
      await expect(pool.query(`INSERT INTO orders (customer_id, reference) SELECT customer_id, reference FROM orders ORDER BY id LIMIT 1`)).rejects.toMatchObject({
        code: '23505',
      });
    },
  },
  {
    name: 'split-table',
    seed: (pool) =>
      seedRows(pool, `INSERT INTO users (name, street, city) SELECT 'User ' || g, g || ' Main St', 'Springfield' FROM generate_series(1, $1) g RETURNING id`, (id) =>
        `${id} Main St|Springfield`,
      ),
    oldRelease: writes(
      async (pool, n) => [
        await one(pool, `INSERT INTO users (name, street, city) VALUES ($1, $2, $3) RETURNING id`, [`Old ${n}`, `${n} Old Rd`, 'Oldtown']),
        `${n} Old Rd|Oldtown`,
      ],
      async (pool, id, n) => {
        await pool.query(`UPDATE users SET street = $2, city = $3 WHERE id = $1`, [id, `${n} Moved Ave`, 'Oldcity']);
        return `${n} Moved Ave|Oldcity`;
      },
    ),
    newRelease: writes(
      async (pool, n) => {
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          const id = String((await client.query<{ id: string }>(`INSERT INTO users (name) VALUES ($1) RETURNING id`, [`New ${n}`])).rows[0]!.id);
          await client.query(
            `INSERT INTO addresses (user_id, street, city) VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO UPDATE SET street = excluded.street, city = excluded.city`,
            [id, `${n} New Blvd`, 'Newtown'],
          );
          await client.query('COMMIT');
          return [id, `${n} New Blvd|Newtown`];
        } catch (error) {
          await client.query('ROLLBACK');
          throw error;
        } finally {
          client.release();
        }
      },
      async (pool, id, n) => {
        await pool.query(
          `INSERT INTO addresses (user_id, street, city) VALUES ($1, $2, $3)
           ON CONFLICT (user_id) DO UPDATE SET street = excluded.street, city = excluded.city`,
          [id, `${n} Newer Way`, 'Newcity'],
        );
        return `${n} Newer Way|Newcity`;
      },
    ),
    read: (pool) => readRows(pool, `SELECT u.id, a.street || '|' || a.city AS value FROM users u LEFT JOIN addresses a ON a.user_id = u.id`),
    async checkSchema(pool) {
      expect(await columns(pool, 'users')).toEqual(['id', 'name']);
    },
  },
];

describe.each(RECIPES)('cookbook recipe $name', (recipe) => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  it('upgrades through the deployed state machine with both releases writing, losing and failing no write', async () => {
    const dir = join(COOKBOOK, recipe.name);
    await db.pool.query(readFileSync(join(dir, 'schema.sql'), 'utf8'));
    const seeded = await recipe.seed(db.pool);
    const ids = [...seeded.keys()];
    const ledger: Ledger = new Map(seeded);
    const oldName = `cookbook-old-${recipe.name}`;
    const release = (applicationName: string, workload: ReleaseWorkload<RecipeRow>, owned: number[]) =>
      new ApplicationWriter({ databaseUrl: db.url, applicationName, workload, owned, ledger, seed: 7, pauseMs: 1 });
    const oldWriter = release(oldName, recipe.oldRelease, ids.filter((_, i) => i % 2 === 0));
    const newWriter = release(`cookbook-new-${recipe.name}`, recipe.newRelease, ids.filter((_, i) => i % 2 === 1));
    const writers = [oldWriter, newWriter];

    // The old release writes from before expand until the drain wait starts (then it is taken out of service, and
    // the drain gate waits for its sessions to go); the new release from migrate on, until after contract.
    oldWriter.start();
    await oldWriter.wrote(20);
    let oldStopped: Promise<WriterReport> | undefined;
    const result = await runLocalExecution({
      databaseUrl: db.url,
      migrationsDirectory: join(dir, 'migrations'),
      drainSource: DrainSource.databaseSessions(`${oldName}%`),
      input: {},
      settings: SETTINGS,
      waitMs: 50,
      retryMs: 50,
      onEvent: (event) => {
        if (event.type !== 'StateEntered') return;
        const phase = PHASE_OF_STATE[event.state.name];
        if (phase) for (const writer of writers) writer.phase = phase;
        if (phase === 'migrate') newWriter.start();
        if (phase === 'drain') oldStopped ??= oldWriter.stop();
      },
    });
    await newWriter.wrote(20);
    const newReport = await newWriter.stop();
    const oldReport = await (oldStopped ?? oldWriter.stop());

    expect(result.status, result.cause).toBe('SUCCEEDED');
    expect([...oldReport.errors, ...newReport.errors]).toEqual([]);
    expect(oldReport.inserts + newReport.inserts, 'both releases inserted as well as updated').toBeGreaterThan(0);
    const migrateSteps = (await loadCatalog(join(dir, 'migrations'))).steps.filter((s) => s.phase === 'migrate').length;
    if (migrateSteps > 0) {
      // Both releases wrote while the batches ran: their writes met the expand triggers and the batches.
      expect(Math.min(oldReport.byPhase.migrate ?? 0, newReport.byPhase.migrate ?? 0), 'writes of each release during migrate').toBeGreaterThan(0);
      expect((result.output as { rowsMigrated: number }).rowsMigrated, 'migrate moved rows').toBeGreaterThan(0);
    }

    const actual = await recipe.read(db.pool);
    expect(ledgerMismatches(ledger, actual).slice(0, 5)).toEqual([]);
    expect(actual.size).toBe(ledger.size);
    await recipe.checkSchema(db.pool);
    expect(formatVersion((await readState(db.client)).version)).toContain(recipe.name);
  });
});

/** The writers' phase labels by the state the execution enters. */
const PHASE_OF_STATE: Readonly<Record<string, string>> = {
  [STATE_NAMES.expand]: 'expand',
  [STATE_NAMES.migrate]: 'migrate',
  [CONTROL_STATE_NAMES.startDrainWait]: 'drain',
  [STATE_NAMES.contract]: 'contract',
  [STATE_NAMES.finish]: 'finish',
};
