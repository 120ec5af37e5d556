import { describe, expect } from 'vitest';
import { MigrateRunawayError } from '../lambdas/core/index.ts';
import { refusedCatalogs, stepKindCases } from './support/step-kind-cases.ts';

/**
 * The repeat-until-zero migration (`lambdas/core/steps/repeat-until-zero-migration.ts`): the statement finds its own
 * work, at most `:batch_size` rows, and is repeated until a batch changes none. A statement that never gets there is
 * stopped by the runaway bound: twice the rows of the tables it names, plus one batch.
 */

const ROWS = (n: number) => `CREATE TABLE t (id int PRIMARY KEY, done boolean NOT NULL DEFAULT false, n int NOT NULL DEFAULT 0);
                              INSERT INTO t (id) SELECT g FROM generate_series(1, ${n}) g;`;

describe('a repeat-until-zero migration', () => {
  stepKindCases('repeat-until-zero', [
    {
      name: 'binds :batch_size (the file overriding the run, adaptive sizes on) and stops at the first batch that changes nothing',
      setup: `CREATE TABLE tags (id bigint PRIMARY KEY, name text NOT NULL);
              INSERT INTO tags SELECT g, CASE WHEN g % 3 = 0 THEN ' tag' || g || ' ' ELSE 'tag' || g END FROM generate_series(1, 100) g;`,
      files: {
        'r1/migrate01_trim.sql':
          '-- emc:repeat-until-zero\n' +
          '-- emc:batch-size 8\n' +
          '-- emc:pending SELECT count(*) FROM tags WHERE name <> btrim(name)\n' +
          'UPDATE tags SET name = btrim(name)\n' +
          'WHERE id = ANY (ARRAY(SELECT id FROM tags WHERE name <> btrim(name) ORDER BY id LIMIT :batch_size));\n',
      },
      // Adaptive sizes on for the run, with a target far above these batches: the file's emc:batch-size still fixes each.
      settings: { batchSize: 1000, targetBatchMs: 5000 },
      async afterMigrate(t) {
        const batches = t.events.flatMap((e) => (e.type === 'batch' ? [[e.rows, e.cursor]] : []));
        expect(batches).toEqual([8, 8, 8, 8, 1, 0].map((rows) => [rows, undefined]));
        expect(await t.rows(`SELECT count(*)::int AS n FROM tags WHERE name <> btrim(name)`)).toEqual([{ n: 0 }]);
        expect(await t.progress('r1_migrate01')).toMatchObject({ cursor: null, rows_done: 33, batches: 6, finished: true });
        expect(await t.version()).toBe('(none)');
        expect(await t.history()).toEqual([['r1_migrate01', 'succeeded']]);
      },
    },
    {
      name: 'moves rows to a new table in batches; contract drops the old column once none is left',
      setup: `CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL, legacy_tag text);
              INSERT INTO notes SELECT g, 'note ' || g, CASE WHEN g % 4 = 0 THEN 'tag' || (g % 3) END FROM generate_series(1, 40) g;`,
      files: {
        'r1/expand01_note_tags.sql': 'CREATE TABLE note_tags (note_id int PRIMARY KEY REFERENCES notes (id), tag text NOT NULL);\n',
        'r1/migrate01_copy_tags.sql':
          '-- emc:repeat-until-zero\n' +
          '-- emc:batch-size 3\n' +
          '-- emc:pending SELECT count(*) FROM notes n WHERE legacy_tag IS NOT NULL AND NOT EXISTS (SELECT 1 FROM note_tags t WHERE t.note_id = n.id)\n' +
          'INSERT INTO note_tags (note_id, tag)\n' +
          'SELECT id, legacy_tag FROM notes n WHERE legacy_tag IS NOT NULL AND NOT EXISTS (SELECT 1 FROM note_tags t WHERE t.note_id = n.id)\n' +
          'ORDER BY id LIMIT :batch_size;\n',
        'r1/contract01_drop_legacy_tag.sql': 'ALTER TABLE notes DROP COLUMN legacy_tag;\n',
      },
      async afterExpand(t) {
        expect(await t.rows(`SELECT count(*)::int AS n FROM note_tags`)).toEqual([{ n: 0 }]);
      },
      async afterMigrate(t) {
        expect(await t.rows(`SELECT count(*)::int AS n, min(note_id) AS first FROM note_tags`)).toEqual([{ n: 10, first: 4 }]);
        // Four batches of three and one of one, then the batch that copies none.
        expect(t.events.flatMap((e) => (e.type === 'batch' ? [e.rows] : []))).toEqual([3, 3, 3, 1, 0]);
      },
      async afterContract(t) {
        expect(await t.columns('notes')).toEqual(['id', 'body']);
        expect(await t.version()).toBe('r1_expand01, r1_contract01');
      },
    },
    {
      name: 'lets a converging INSERT into an empty table copy far more rows than the table it writes held',
      setup: ROWS(60),
      files: {
        'r1/expand01_add_copy.sql': 'CREATE TABLE copy (id int PRIMARY KEY);\n',
        'r1/migrate01_step.sql':
          '-- emc:repeat-until-zero\n' +
          'INSERT INTO copy (id) SELECT id FROM t WHERE NOT EXISTS (SELECT 1 FROM copy c WHERE c.id = t.id) ORDER BY id LIMIT :batch_size;\n',
      },
      settings: { batchSize: 4 },
      async afterMigrate(t) {
        expect(await t.rows(`SELECT count(*)::int AS n FROM copy`)).toEqual([{ n: 60 }]);
      },
    },
    {
      name: 'fails once its pass changed more than twice the rows of its tables, naming the step and the cause',
      setup: ROWS(10),
      files: {
        'r1/expand01_add_copy.sql': 'CREATE TABLE copy (id int PRIMARY KEY);\n',
        'r1/migrate01_step.sql':
          '-- emc:repeat-until-zero\n' +
          '-- emc:batch-size 3\n' +
          '-- The WHERE does not leave out migrated rows: every batch changes the first three rows again.\n' +
          'UPDATE t SET n = n + 1 WHERE id = ANY (ARRAY(SELECT id FROM t ORDER BY id LIMIT :batch_size));\n',
      },
      settings: { migrateBudgetMs: 1000 },
      fails: {
        phase: 'migrate',
        error(error) {
          expect(error).toBeInstanceOf(MigrateRunawayError);
          expect(error.message).toMatch(
            /Step r1_migrate01 stopped: its batches changed 24 rows in this pass without reaching a batch that changes none, more than twice the 10 rows of the tables it reads and writes \("t"\) plus one batch: it keeps changing rows it already changed.* \(r1\/migrate01_step\.sql\)/,
          );
        },
        async afterFailure(t) {
          // 2 × 10 + 3 = 23 rows allowed: the eighth batch (24 rows) is the last, and it committed.
          expect(await t.rows(`SELECT sum(n)::int AS total FROM t`)).toEqual([{ total: 24 }]);
          expect((await t.history()).at(-1)).toEqual(['r1_migrate01', 'failed']);
          expect(await t.progress('r1_migrate01')).toMatchObject({ rows_done: 24, batches: 8, finished: false });
        },
      },
    },
  ]);

  refusedCatalogs([
    {
      name: 'a repeat-until-zero statement with an unknown placeholder',
      files: { 'a/migrate01_m.sql': '-- emc:repeat-until-zero\nDELETE FROM t WHERE id IN (SELECT id FROM t WHERE c < :cutoff LIMIT :batch_size);\n' },
      problems: [{ file: 'a/migrate01_m.sql', message: /^a repeat-until-zero statement must use :batch_size; unknown :cutoff$/, line: 2 }],
    },
    {
      name: 'a repeat-until-zero statement without :batch_size (its batches would have no bound)',
      files: { 'a/migrate01_m.sql': '-- emc:repeat-until-zero\n\nUPDATE t SET c = 1 WHERE c IS NULL;\n' },
      problems: [{ file: 'a/migrate01_m.sql', message: /^a repeat-until-zero statement must use :batch_size; missing :batch_size$/, line: 3 }],
    },
    {
      name: 'a repeat-until-zero statement using the keyset placeholders',
      files: { 'a/migrate01_m.sql': '-- emc:repeat-until-zero\nUPDATE t SET c = 1 WHERE id BETWEEN :from_key AND :to_key;\n' },
      problems: [
        { file: 'a/migrate01_m.sql', message: /^a repeat-until-zero statement must use :batch_size; missing :batch_size; unknown :from_key, :to_key$/, line: 2 },
      ],
    },
  ]);
});
