import { describe, expect } from 'vitest';
import { StepFailedError } from '../lambdas/core/index.ts';
import { refusedCatalogs, stepKindCases, type CaseState, type StepKindCase } from './support/step-kind-cases.ts';

/**
 * The statement-by-statement schema step (`lambdas/core/steps/statement-by-statement-step.ts`): an expand or contract
 * step marked `-- emc:no-transaction`, each statement on its own. A failure keeps the statements before it; the re-run
 * skips an index already built, drops and rebuilds an INVALID one a failed build left, and converges.
 */

async function index(t: CaseState, qualified: string) {
  const [found] = await t.rows<{ valid: boolean; comment: string | null }>(
    `SELECT i.indisvalid AS valid, obj_description(i.indexrelid, 'pg_class') AS comment
     FROM pg_index i WHERE i.indexrelid = to_regclass('${qualified}')`,
  );
  return found;
}

const eventsOf = (t: CaseState, type: string) => t.events.filter((e) => e.type === type);

/** A unique index whose first build fails on a duplicate, in `schema`; the duplicate removed, it is rebuilt. */
const rebuildsInvalidIndex = (schema: 'public' | 'app'): StepKindCase => {
  const table = schema === 'public' ? 'accounts' : 'app.accounts';
  return {
    name: `drops and rebuilds the INVALID index a failed build left behind (table in schema ${schema})`,
    setup: `${schema === 'app' ? 'CREATE SCHEMA app;' : ''}
            CREATE TABLE ${table} (id bigint PRIMARY KEY, email text NOT NULL);
            INSERT INTO ${table} SELECT g, 'user' || g || '@example.com' FROM generate_series(1, 300) g;
            INSERT INTO ${table} VALUES (301, 'user7@example.com');`,
    files: {
      'r1/expand01_unique_email.sql':
        `-- emc:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS accounts_email_key ON ${table} (email);\n`,
    },
    fails: {
      phase: 'expand',
      error(error) {
        expect(error).toBeInstanceOf(StepFailedError);
        expect((error as StepFailedError).sqlState).toBe('23505');
        expect((error as StepFailedError).nextAction).toContain('outside a transaction');
      },
      async afterFailure(t) {
        expect((await index(t, `${schema}.accounts_email_key`))?.valid).toBe(false);
        expect(await t.version()).toBe('(none)');
        expect(await t.history()).toEqual([['r1_expand01', 'failed']]);
      },
      // The comment marks the leftover: a rebuilt index has none.
      repair: { sql: `DELETE FROM ${table} WHERE id = 301; COMMENT ON INDEX ${schema}.accounts_email_key IS 'leftover';` },
    },
    async afterExpand(t) {
      expect(await t.version()).toBe('r1_expand01');
      expect(t.events).toContainEqual({ type: 'invalid-index-dropped', stepId: 'r1_expand01', index: `${schema}.accounts_email_key` });
      expect(await index(t, `${schema}.accounts_email_key`)).toEqual({ valid: true, comment: null });
      // It is the unique index the file asked for, and it works.
      await expect(t.db.pool.query(`INSERT INTO ${table} VALUES (302, 'user8@example.com')`)).rejects.toThrow(/duplicate key/);
      expect((await t.history()).map(([, outcome]) => outcome)).toEqual(['failed', 'succeeded']);
    },
  };
};

describe('a statement-by-statement schema step', () => {
  stepKindCases('statement-by-statement', [
    {
      name: 'expand builds a named index concurrently in schema app, contract drops the old one concurrently',
      setup: `CREATE SCHEMA app;
              CREATE TABLE app.orders (id bigint PRIMARY KEY, customer text NOT NULL);
              CREATE INDEX orders_customer_idx ON app.orders (customer);
              INSERT INTO app.orders SELECT g, 'c' || (g % 10) FROM generate_series(1, 200) g;`,
      files: {
        'r1/expand01_add_customer_id.sql': 'ALTER TABLE app.orders ADD COLUMN customer_id bigint;\n',
        'r1/expand02_index_customer_id.sql':
          '-- emc:no-transaction\nCREATE INDEX CONCURRENTLY orders_customer_id_idx ON app.orders (customer_id);\n',
        'r1/migrate01_fill_customer_id.sql':
          '-- emc:keyset table=app.orders key=id\n' +
          '-- emc:pending SELECT count(*) FROM app.orders WHERE customer_id IS NULL\n' +
          "UPDATE app.orders SET customer_id = substr(customer, 2)::bigint WHERE id BETWEEN :from_key AND :to_key AND customer_id IS NULL;\n",
        'r1/contract01_drop_customer_index.sql': '-- emc:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS app.orders_customer_idx;\n',
        'r1/contract02_drop_customer.sql': 'ALTER TABLE app.orders DROP COLUMN customer;\n',
      },
      async afterExpand(t) {
        // Load read the index's name and schema, which a re-run after a crash looks for.
        const expand02 = t.catalog.steps.find((s) => s.id === 'r1_expand02')!;
        expect(expand02.kind).toBe('statement-by-statement');
        expect(expand02.statements[0]).toHaveProperty('concurrentIndex', { schema: 'app', name: 'orders_customer_id_idx' });
        expect(await index(t, 'app.orders_customer_id_idx')).toEqual({ valid: true, comment: null });
        expect(await t.version()).toBe('r1_expand02');
      },
      async afterContract(t) {
        expect(await index(t, 'app.orders_customer_idx')).toBeUndefined();
        expect(await t.columns('app.orders')).toEqual(['id', 'customer_id']);
        expect(await t.version()).toBe('r1_expand02, r1_contract02');
      },
    },
    {
      name: 'skips a statement whose valid index already exists and runs the rest of the step',
      // The comment shows that the existing index is kept, not rebuilt.
      setup: `CREATE TABLE things (id bigint PRIMARY KEY, v int, w int);
              CREATE INDEX things_v_idx ON things (v);
              COMMENT ON INDEX things_v_idx IS 'built before';`,
      files: {
        // Without IF NOT EXISTS: running the first statement again would fail.
        'r1/expand01_indexes.sql':
          '-- emc:no-transaction\n' +
          'CREATE INDEX CONCURRENTLY things_v_idx ON things (v);\n' +
          'CREATE INDEX CONCURRENTLY things_w_idx ON things (w);\n',
      },
      async afterExpand(t) {
        expect(await t.version()).toBe('r1_expand01');
        expect(t.events).toContainEqual({ type: 'index-already-built', stepId: 'r1_expand01', index: 'public.things_v_idx' });
        expect(eventsOf(t, 'invalid-index-dropped')).toEqual([]);
        expect(await index(t, 'public.things_v_idx')).toEqual({ valid: true, comment: 'built before' });
        expect((await index(t, 'public.things_w_idx'))?.valid).toBe(true);
      },
    },
    rebuildsInvalidIndex('public'),
    rebuildsInvalidIndex('app'),
    {
      name: 'a failing statement keeps the statements before it; the fixed file re-run skips them and converges',
      setup: `CREATE TABLE t (id int PRIMARY KEY, a int);
              INSERT INTO t SELECT g, g % 5 FROM generate_series(1, 50) g;`,
      files: {
        'r1/expand01_index_and_column.sql':
          '-- emc:no-transaction\n' +
          'CREATE INDEX CONCURRENTLY t_a_idx ON t (a);\n' +
          '-- A NOT NULL column without a default fails on a table with rows.\n' +
          'ALTER TABLE t ADD COLUMN IF NOT EXISTS b int NOT NULL;\n',
      },
      fails: {
        phase: 'expand',
        error(error) {
          expect(error).toBeInstanceOf(StepFailedError);
          expect(error).toMatchObject({ stepId: 'r1_expand01', sqlState: '23502' });
          expect(error.message).toContain('r1/expand01_index_and_column.sql, statement at line 4');
        },
        async afterFailure(t) {
          expect((await index(t, 'public.t_a_idx'))?.valid).toBe(true);
          expect(await t.columns('t')).toEqual(['id', 'a']);
          expect(await t.version()).toBe('(none)');
          expect(await t.history()).toEqual([['r1_expand01', 'failed']]);
        },
        // Never applied, so the file may change; the index it built stays.
        repair: {
          files: {
            'r1/expand01_index_and_column.sql':
              '-- emc:no-transaction\n' +
              'CREATE INDEX CONCURRENTLY t_a_idx ON t (a);\n' +
              'ALTER TABLE t ADD COLUMN IF NOT EXISTS b int NOT NULL DEFAULT 0;\n',
          },
        },
      },
      async afterExpand(t) {
        expect(t.events).toContainEqual({ type: 'index-already-built', stepId: 'r1_expand01', index: 'public.t_a_idx' });
        expect(await t.columns('t')).toEqual(['id', 'a', 'b']);
        expect(await t.version()).toBe('r1_expand01');
        expect((await t.history()).map(([, outcome]) => outcome)).toEqual(['failed', 'succeeded']);
      },
    },
  ]);

  refusedCatalogs([
    {
      name: 'unnamed concurrent index',
      files: { 'a/expand01_x.sql': '-- emc:no-transaction\n\nCREATE INDEX CONCURRENTLY ON t (c);\n' },
      problems: [{ file: 'a/expand01_x.sql', message: 'CREATE INDEX CONCURRENTLY must name its index', line: 3 }],
    },
    {
      name: 'an unnamed concurrent index after a named one in a contract step',
      files: {
        'a/expand01_x.sql': 'ALTER TABLE t ADD COLUMN c int;\n',
        'a/contract01_x.sql':
          '-- emc:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_c_idx ON t (c);\nCREATE UNIQUE INDEX CONCURRENTLY ON t (id, c);\n',
      },
      problems: [{ file: 'a/contract01_x.sql', message: 'CREATE INDEX CONCURRENTLY must name its index', line: 3 }],
    },
  ]);
});
